"""The suite's results: one record per check run, a JSON report, and a table by tier."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from ketch_conformance.tiers import TIERS

__all__ = [
    "COLUMNS",
    "FAILING_OUTCOMES",
    "OUTCOMES",
    "CheckResult",
    "format_table",
    "read_report",
    "tally",
    "write_report",
]

OUTCOMES: Final = (
    "passed",
    "failed",
    "error",
    "skipped",
    "not_applicable",
    "xfailed",
    "xpassed",
)
"""What can become of a check: ``error`` is a failure outside the check (a fixture)."""

FAILING_OUTCOMES: Final = frozenset({"failed", "error"})

COLUMNS: Final = (
    ("passed", ("passed", "xpassed")),
    ("failed", ("failed", "error")),
    ("skipped", ("skipped",)),
    ("n/a", ("not_applicable",)),
    ("xfail", ("xfailed",)),
)
"""The table's columns and the outcomes each counts."""


@dataclass(frozen=True)
class CheckResult:
    """One check, run once on one target over one transport.

    ``fault`` is set when the process running the plugin exited, was killed or hung
    during the check (see :class:`ketch_conformance.faults.ProcessFault`).
    """

    check: str
    tier: str
    transport: str
    target: str
    outcome: str
    message: str
    duration: float
    nodeid: str
    fault: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The record as JSON values."""
        return asdict(self)


def tally(results: Iterable[CheckResult]) -> dict[str, Counter[str]]:
    """Outcome counts by tier, tiers in the suite's order (then any others)."""
    counts: dict[str, Counter[str]] = {tier: Counter() for tier in TIERS}
    for result in results:
        counts.setdefault(result.tier, Counter())[result.outcome] += 1
    return counts


def format_table(results: Iterable[CheckResult]) -> str:
    """A plain-text table of outcomes by tier, with a total row."""
    counts = tally(results)
    total: Counter[str] = Counter()
    for counter in counts.values():
        total.update(counter)
    width = max(len(tier) for tier in [*counts, "total"])
    header = "tier".ljust(width) + "".join(f"{name:>9}" for name, _ in COLUMNS)
    lines = [header, "-" * len(header)]
    for tier, counter in [*counts.items(), ("total", total)]:
        cells = "".join(
            f"{sum(counter[outcome] for outcome in outcomes):>9}" for _, outcomes in COLUMNS
        )
        lines.append(tier.ljust(width) + cells)
    return "\n".join(lines)


def write_report(
    path: str | Path, results: Iterable[CheckResult], about: Mapping[str, Any]
) -> None:
    """Write the JSON report: ``about`` (plugin, model, strict, ...), totals, and every result.

    The file is replaced whole, so a reader never sees half a report.
    """
    listed = list(results)
    totals = {tier: dict(counter) for tier, counter in tally(listed).items()}
    document = {**about, "totals": totals, "results": [result.as_json() for result in listed]}
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_report(path: str | Path) -> tuple[dict[str, Any], list[CheckResult]]:
    """The report's ``about`` fields and its results."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    results = [CheckResult(**fields) for fields in document.pop("results")]
    document.pop("totals", None)
    return document, results
