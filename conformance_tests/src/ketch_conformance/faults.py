"""What became of a process that stopped answering: it exited, a signal killed it, or it hung.

The suite runs a plugin's hooks in processes of their own (a worker for the
in-process checks, ``ketch serve`` for the gRPC ones), so that a plugin that exits,
crashes or hangs fails the check it was in, and the checks after it get a fresh
process. A :class:`ProcessFault` says what happened and during which plugin call;
:class:`PluginFault` is the check failure that carries it into the report.
"""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass
from typing import Any, Final

from ketch_conformance.failures import ConformanceFailure

__all__ = [
    "EXIT",
    "NO_ANSWER",
    "SIGNAL",
    "PluginFault",
    "ProcessFault",
    "exit_fault",
    "hang_fault",
    "quoted_log",
]

EXIT: Final = "exit"
SIGNAL: Final = "signal"
NO_ANSWER: Final = "no_answer"
LOG_LINES: Final = 12
"""How many lines of the process's log a verdict quotes."""
CRASH_FRAMES: Final = 6
"""How many frames of the crashed thread's Python stack a verdict quotes."""


def quoted_log(log: str) -> list[str]:
    """The lines of a log worth quoting.

    After a crash, Python's report and the crashed thread's innermost frames (what
    ``faulthandler`` writes); else the last :data:`LOG_LINES` lines.
    """
    lines = [line for line in log.splitlines() if line.strip()]
    fatal = [index for index, line in enumerate(lines) if line.startswith("Fatal Python error")]
    if not fatal:
        return lines[-LOG_LINES:]
    start = fatal[-1]
    current = next(
        (i for i in range(start, len(lines)) if lines[i].startswith("Current thread")), None
    )
    if current is None:
        return lines[start : start + LOG_LINES]
    return [lines[start], *lines[current : current + 1 + CRASH_FRAMES]]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(frozen=True)
class ProcessFault:
    """A process that ran plugin code stopped answering.

    :param process: which process, in words (``the worker process that runs the hooks``).
    :param kind: :data:`EXIT`, :data:`SIGNAL` or :data:`NO_ANSWER`.
    :param detail: what happened, in words (``was killed by signal 11 (SIGSEGV)``).
    :param call: the plugin call in progress (``ketch_batch_predict on a batch of 2 rows ...``).
    :param log_tail: the end of the process's log (a Python traceback, often).
    """

    process: str
    kind: str
    detail: str
    call: str
    log_tail: str = ""

    def message(self, check: str | None = None) -> str:
        """The verdict: the process, what happened, the call, the check; then the log's end."""
        where = f", in check {check}" if check else ""
        text = (
            f"{self.process} {self.detail} during {self.call}{where}; the checks after it get "
            "a fresh process"
        )
        lines = quoted_log(self.log_tail)
        if lines:
            text += "\nthe end of its log:\n" + "\n".join(lines)
        return text

    def as_json(self) -> dict[str, Any]:
        """The fault's fields as JSON values (the log left out)."""
        fields = asdict(self)
        fields.pop("log_tail")
        return fields


def exit_fault(process: str, status: int, call: str, log_tail: str = "") -> ProcessFault:
    """The fault of a process that ended with ``status`` (negative: killed by that signal)."""
    if status < 0:
        number = -status
        detail = f"was killed by signal {number} ({_signal_name(number)})"
        return ProcessFault(process, SIGNAL, detail, call, log_tail)
    return ProcessFault(process, EXIT, f"exited with status {status}", call, log_tail)


def hang_fault(process: str, seconds: float, call: str, log_tail: str = "") -> ProcessFault:
    """The fault of a process that gave no answer to ``call`` within ``seconds``."""
    detail = f"gave no answer in {seconds:g} s (the limit for one plugin call)"
    return ProcessFault(process, NO_ANSWER, detail, call, log_tail)


class PluginFault(ConformanceFailure):
    """A check failed because the process running the plugin exited, crashed or hung."""

    def __init__(self, fault: ProcessFault, check: str | None = None) -> None:
        self.fault = fault
        self.check = check
        super().__init__(fault.message(check))

    def in_check(self, check: str) -> PluginFault:
        """The same fault, naming the check it happened in."""
        return PluginFault(self.fault, check)
