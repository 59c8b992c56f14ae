"""What the suite adds to a pytest run: strict mode, expected failures, results and the report.

:class:`ConformanceSession` is registered as a pytest plugin by
:mod:`ketch_conformance.pytest_plugin`. It acts on the suite's own tests only (the
methods of :class:`~ketch_conformance.suite.TestInProcess` and
:class:`~ketch_conformance.suite.TestOverGrpc`, wherever they are imported).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ketch_conformance.checks import CHECKS
from ketch_conformance.expected_failures import ExpectedFailure
from ketch_conformance.failures import ConformanceFailure
from ketch_conformance.faults import PluginFault
from ketch_conformance.report import CheckResult, format_table, write_report
from ketch_conformance.suite import TestInProcess, TestOverGrpc
from ketch_conformance.tiers import NOT_APPLICABLE_PREFIX

__all__ = [
    "MAY_SKIP_MARKER",
    "SESSION_NAME",
    "STRICT_PREFIX",
    "ConformanceSession",
    "SuiteItem",
    "suite_item",
]

SESSION_NAME = "ketch-conformance-session"
"""The name :class:`ConformanceSession` is registered under with pytest's plugin manager."""
STRICT_PREFIX = "strict mode allows no skips: "
MAY_SKIP_MARKER = "ketch_target_may_skip"
"""Marks a test module whose target may be missing here (a GPU-only target on a CPU machine)."""
_SKIP_PREFIX = "Skipped: "


@dataclass(frozen=True)
class SuiteItem:
    """Which check a test runs, over which transport, on which target."""

    check: str
    transport: str
    target: str


def suite_item(item: pytest.Item) -> SuiteItem | None:
    """The check behind ``item``, or None when it is not one of the suite's tests."""
    cls = getattr(item, "cls", None)
    callspec = getattr(item, "callspec", None)
    if cls is None or callspec is None or not issubclass(cls, (TestInProcess, TestOverGrpc)):
        return None
    check = callspec.params.get("check_name")
    if check not in CHECKS:
        return None
    target = "-".join(part for part in callspec.id.split("-") if part != check)
    return SuiteItem(check, cls.transport, target)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix(_SKIP_PREFIX)


def _outcome(report: pytest.TestReport) -> tuple[str, str]:
    """The outcome's name and its message, from one phase's report."""
    if hasattr(report, "wasxfail"):
        return ("xfailed" if report.skipped else "xpassed"), str(report.wasxfail)
    if report.passed:
        return "passed", ""
    if report.skipped:
        reason = _skip_reason(report)
        if reason.startswith(NOT_APPLICABLE_PREFIX):
            return "not_applicable", reason.removeprefix(NOT_APPLICABLE_PREFIX)
        return "skipped", reason
    return ("failed" if report.when == "call" else "error"), ""


def _failure_message(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    if call.excinfo is not None and isinstance(call.excinfo.value, ConformanceFailure):
        return str(call.excinfo.value)
    if call.excinfo is not None and not isinstance(call.excinfo.value, pytest.skip.Exception):
        return call.excinfo.exconly()
    text = report.longreprtext.strip()
    return text.splitlines()[-1] if text else ""


def _fault(call: pytest.CallInfo[None]) -> dict[str, Any] | None:
    if call.excinfo is not None and isinstance(call.excinfo.value, PluginFault):
        return call.excinfo.value.fault.as_json()
    return None


class ConformanceSession:
    """Strict mode, expected failures, and a record of every check that ran.

    The report is written again after every check, so that it tells how far a
    run got even if the run itself was killed (``finished`` stays false, and
    ``running`` names the check it was in).
    """

    def __init__(
        self,
        *,
        strict: bool,
        expected_failures: list[ExpectedFailure],
        report_path: Path | None,
        about: dict[str, Any],
    ) -> None:
        self.strict = strict
        self.expected_failures = expected_failures
        self.report_path = report_path
        self.about = about
        self.results: dict[str, CheckResult] = {}
        self.running: str | None = None
        self.usage_error: str | None = None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Mark the checks of the expected-failures file as strict xfails.

        Only the check's own failure is expected: an error elsewhere (a wrapper that
        does not start) still counts as one.
        """
        for item in items:
            found = suite_item(item)
            if found is None:
                continue
            for entry in self.expected_failures:
                if entry.matches(found.check, found.transport):
                    item.add_marker(
                        pytest.mark.xfail(
                            reason=entry.reason, strict=True, raises=ConformanceFailure
                        )
                    )

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """In strict mode a skip (other than not applicable) fails; then record the outcome.

        The one exception: in a module marked ``ketch_target_may_skip``, a skip while
        the target is set up (its fixture found no GPU, say) stays a skip. Once the
        target exists, its checks are held to strict mode as everywhere.
        """
        report = yield
        found = suite_item(item)
        if found is None:
            return report
        outcome, message = _outcome(report)
        absent_target = report.when == "setup" and item.get_closest_marker(MAY_SKIP_MARKER)
        if outcome == "skipped" and self.strict and not absent_target:
            report.outcome = "failed"
            report.longrepr = STRICT_PREFIX + message
            outcome, message = "failed", report.longrepr
        elif outcome in ("failed", "error"):
            message = _failure_message(report, call)
        self._record(
            item.nodeid, found, report, outcome=outcome, message=message, fault=_fault(call)
        )
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Note the check that starts, in the report."""
        found = suite_item(item)
        if found is not None:
            target = f" [{found.target}]" if found.target else ""
            self.running = f"{found.transport} {found.check}{target}"
            self._write(finished=False)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        """Write the report with the check that just finished."""
        if nodeid in self.results:
            self.running = None
            self._write(finished=False)

    def _record(
        self,
        nodeid: str,
        found: SuiteItem,
        report: pytest.TestReport,
        *,
        outcome: str,
        message: str,
        fault: dict[str, Any] | None,
    ) -> None:
        earlier = self.results.get(nodeid)
        duration = report.duration + (earlier.duration if earlier else 0.0)
        if earlier is not None and outcome == "passed":
            outcome, message, fault = earlier.outcome, earlier.message, earlier.fault
        self.results[nodeid] = CheckResult(
            check=found.check,
            tier=CHECKS[found.check].tier,
            transport=found.transport,
            target=found.target,
            outcome=outcome,
            message=message,
            duration=round(duration, 4),
            nodeid=nodeid,
            fault=fault,
        )

    def _write(self, *, finished: bool) -> None:
        if self.report_path is None:
            return
        about = {
            **self.about,
            "strict": self.strict,
            "finished": finished,
            "running": self.running,
            "usage_error": self.usage_error,
        }
        write_report(self.report_path, self.results.values(), about)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the JSON report, when one was asked for."""
        self._write(finished=True)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Outcomes by tier, after pytest's own summary."""
        if not self.results or terminalreporter.config.option.no_summary:
            return
        mode = "strict" if self.strict else "not strict: skips are allowed"
        terminalreporter.write_sep("=", f"ketch conformance ({mode})")
        terminalreporter.write_line(format_table(self.results.values()))
