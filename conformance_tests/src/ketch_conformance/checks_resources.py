"""Core rule: many calls leave the process with no more threads or open files than a few did.

Counts come from ``/proc`` (Linux): the wrapper process's over gRPC, this
process's in process. A warm-up is allowed to grow them (pools fill lazily);
growth in two rounds of calls after it is a leak. Registered by importing
:mod:`ketch_conformance.checks`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ketch_conformance.failures import CheckSkipped, ConformanceFailure
from ketch_conformance.registry import CheckContext, check
from ketch_conformance.subjects import GrpcSubject

__all__ = ["ROUND_CALLS", "Resources", "resources_of"]

WARMUP_CALLS: Final = 16
ROUND_CALLS: Final = 64
SLACK: Final = 4


@dataclass(frozen=True)
class Resources:
    """How many threads and open file descriptors a process holds."""

    threads: int
    open_files: int


def resources_of(pid: int) -> Resources:
    """The counts for process ``pid``, read from ``/proc``."""
    proc = Path("/proc", str(pid))
    threads = 0
    for line in (proc / "status").read_text(encoding="ascii").splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
    return Resources(threads, len(os.listdir(proc / "fd")))


def _leak(kind: str, counts: list[int]) -> str | None:
    warm, first, second = counts
    if first - warm > SLACK and second - first > SLACK:
        return (
            f"{kind} grew from {warm} to {first} to {second} over two rounds of {ROUND_CALLS} "
            "calls after a warm-up"
        )
    return None


@check(
    "no_resource_growth",
    "many calls leave no more threads or open files behind than a warm-up did",
)
def check_no_resource_growth(context: CheckContext) -> None:
    """A warm-up, then two rounds of calls, counting threads and file descriptors after each."""
    if isinstance(context.subject, GrpcSubject):
        pid, where = context.subject.process.pid, "the wrapper process"
    else:
        pid, where = os.getpid(), "this process (the hooks, in process)"
    if not Path("/proc", str(pid), "fd").is_dir():
        raise CheckSkipped("counting threads and open files needs /proc (Linux)")
    samples = []
    for calls in (WARMUP_CALLS, ROUND_CALLS, ROUND_CALLS):
        for _ in range(calls):
            context.predict(context.inputs)
        samples.append(resources_of(pid))
    leaks = [
        leak
        for leak in (
            _leak("threads", [sample.threads for sample in samples]),
            _leak("open files", [sample.open_files for sample in samples]),
        )
        if leak
    ]
    if leaks:
        raise ConformanceFailure(
            f"{where} leaks: {'; '.join(leaks)}; release per-call threads, files and sockets"
        )
