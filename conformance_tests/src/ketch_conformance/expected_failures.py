"""The expected-failures file: checks known to fail, each with the reason.

One check per line: its name (``rows_independent``), or a transport and a name
(``grpc::concurrent_clients``, ``in_process::repeatable``), then the reason.
Blank lines and lines starting with ``#`` are ignored::

    # known failures of ketch-myframework 0.3
    batch_equals_singles  cuDNN picks another kernel for a batch of one (issue 12)
    grpc::sigterm_finishes_calls  the framework's own signal handler exits at once
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ketch_conformance.checks import CHECKS
from ketch_conformance.registry import TRANSPORTS

__all__ = ["ExpectedFailure", "read_expected_failures"]

SEPARATOR = "::"


@dataclass(frozen=True)
class ExpectedFailure:
    """A check expected to fail (over one transport, or both when ``transport`` is None)."""

    check: str
    transport: str | None
    reason: str

    def matches(self, check: str, transport: str) -> bool:
        """Whether this entry covers ``check`` over ``transport``."""
        return self.check == check and self.transport in (None, transport)


def _parse(line: str, number: int, path: Path) -> ExpectedFailure:
    name, *rest = line.split(maxsplit=1)
    reason = rest[0].strip() if rest else ""
    transport: str | None = None
    if SEPARATOR in name:
        transport, _, name = name.partition(SEPARATOR)
        if transport not in TRANSPORTS:
            raise ValueError(
                f"{path}:{number}: unknown transport {transport!r}; use {' or '.join(TRANSPORTS)}"
            )
    if name not in CHECKS:
        raise ValueError(
            f"{path}:{number}: no check is named {name!r}; the checks are {', '.join(CHECKS)}"
        )
    if not reason:
        raise ValueError(f"{path}:{number}: {name} needs a reason after its name")
    return ExpectedFailure(name, transport, reason)


def read_expected_failures(path: str | Path) -> list[ExpectedFailure]:
    """The entries of an expected-failures file; ValueError naming the line of a bad one."""
    path = Path(path)
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            entries.append(_parse(line, number, path))
    return entries
