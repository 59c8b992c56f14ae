"""The suite as pytest tests: one test per check, in process and over gRPC.

Run it against any plugin and model::

    pytest --pyargs ketch_conformance.suite --ketch-plugin sklearn --ketch-model model.skops

or, in a plugin's own tests, import the two classes into a test module and
override the ``ketch_target`` fixture there (module scope)::

    from ketch_conformance.suite import TestInProcess, TestOverGrpc

    @pytest.fixture(scope="module")
    def ketch_target(tmp_path_factory) -> ConformanceTarget: ...

A check whose tier does not apply to the wrapper is skipped with a reason that
starts with ``not applicable:``; a check that applies but cannot run here is
skipped with its reason, which strict mode (``--ketch-strict``) turns into a failure.

The plugin runs in processes of its own (a worker for the in-process checks,
``ketch serve`` for the gRPC ones). When one exits, is killed or hangs during a
check, that check fails with a :class:`~ketch_conformance.faults.PluginFault`
naming what happened and the plugin call in progress, and the next check gets a
fresh process.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from ketch_conformance.checks import CHECKS, IN_PROCESS, OVER_GRPC, CheckContext, checks_for
from ketch_conformance.failures import CheckSkipped, ConformanceFailure
from ketch_conformance.faults import PluginFault
from ketch_conformance.subjects import Subject
from ketch_conformance.tiers import NOT_APPLICABLE_PREFIX, not_applicable

__all__ = ["TestInProcess", "TestOverGrpc", "run_check"]


def _params(transport: str) -> list[object]:
    return [pytest.param(item.name, id=item.name) for item in checks_for(transport)]


def _subjects(context: CheckContext) -> list[Subject]:
    """The processes a check may use: its subject's, and the in-process reference's."""
    subjects: list[Subject] = [context.subject]
    if context.reference is not None and context.reference is not context.subject:
        subjects.append(context.reference)
    return subjects


def _fault_in(check_name: str, subjects: list[Subject]) -> PluginFault | None:
    for subject in subjects:
        fault = subject.fault()
        if fault is not None:
            return PluginFault(fault, check_name)
    return None


def run_check(check_name: str, context: CheckContext) -> None:
    """Run one check as a test: not applicable or unable to run here is a skip with a reason.

    A process that died or hung in an earlier check is replaced first; one that dies
    or hangs during this check fails it with a PluginFault.
    """
    item = CHECKS[check_name]
    reason = not_applicable(item, context.signature)
    if reason is not None:
        pytest.skip(NOT_APPLICABLE_PREFIX + reason)
    subjects = _subjects(context)
    for subject in subjects:
        try:
            subject.renew()
        except Exception as error:
            raise ConformanceFailure(
                f"a fresh process for {subject.label} did not start after the last check's "
                f"fault: {error}"
            ) from error
    try:
        item.run(context)
    except CheckSkipped as skipped:
        fault = _fault_in(check_name, subjects)
        if fault is not None:
            raise fault from skipped
        pytest.skip(str(skipped))
    except Exception as error:
        fault = _fault_in(check_name, subjects)
        if fault is not None:
            raise fault from error
        raise
    fault = _fault_in(check_name, subjects)
    if fault is not None:
        raise fault


class TestInProcess:
    """The contract's rules, checked on the hooks themselves."""

    transport: ClassVar[str] = IN_PROCESS

    @pytest.mark.parametrize("check_name", _params(IN_PROCESS))
    def test_rule(self, check_name: str, ketch_in_process_context: CheckContext) -> None:
        """One check, in process."""
        run_check(check_name, ketch_in_process_context)


class TestOverGrpc:
    """The contract's rules, checked through a real ``ketch serve`` process."""

    transport: ClassVar[str] = OVER_GRPC

    @pytest.mark.parametrize("check_name", _params(OVER_GRPC))
    def test_rule(self, check_name: str, ketch_grpc_context: CheckContext) -> None:
        """One check, over gRPC."""
        run_check(check_name, ketch_grpc_context)
