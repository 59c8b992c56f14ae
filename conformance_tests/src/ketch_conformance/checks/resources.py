"""Core rules: once warm, calls leave no more threads, open files or memory behind.

One scenario serves both checks: the sample asked :data:`WARMUP_CALLS` times (pools
fill, caches warm, allocators settle), then :data:`ROUNDS` rounds of
:data:`ROUND_CALLS` identical calls, looking at the process after each. Over gRPC
the process is the wrapper, read from ``/proc``; in process it is the process that
runs the hooks, which also reports its C heap in use and the device memory its
framework holds. Something that grows in every round, by more than a warm process
moves, is a leak: a growth once (a pool that fills late) is not.

The memory tolerance, :data:`MEMORY_TOLERANCE_PER_CALL`, was set by running this
scenario on the scikit-learn, PyTorch, TensorFlow and Vowpal Wabbit plugins'
models (``bench/conformance_memory.py`` measures them): it sits over 25 times
above the most they grew in a round (2.4 KiB a call), and 16 times below the
1 MiB a call that a leak of one result per call holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ketch_conformance.failures import CheckSkipped, ConformanceFailure
from ketch_conformance.registry import CheckContext, check
from ketch_conformance.usage import Usage

__all__ = [
    "MEMORY_TOLERANCE_PER_CALL",
    "ROUNDS",
    "ROUND_CALLS",
    "RULES",
    "WARMUP_CALLS",
    "UsageRecord",
    "usage_record",
]

WARMUP_CALLS: Final = 32
ROUND_CALLS: Final = 64
ROUNDS: Final = 3
SLACK: Final = 4
"""Threads or open files a round may add without counting as growth."""
MEMORY_TOLERANCE_PER_CALL: Final = 64 * 1024
"""Bytes a round may grow per call without counting as growth (4 MiB a round of 64)."""
MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class UsageRecord:
    """A process looked at after the warm-up and after each round of calls."""

    where: str
    samples: tuple[Usage, ...]


def usage_record(context: CheckContext) -> UsageRecord:
    """The scenario, run once per subject and shared by both checks."""
    subject = context.subject

    def run() -> UsageRecord:
        samples = []
        for calls in (WARMUP_CALLS, *[ROUND_CALLS] * ROUNDS):
            for _ in range(calls):
                context.predict(context.inputs)
            try:
                samples.append(subject.usage())
            except OSError as error:
                raise CheckSkipped(
                    f"reading threads, open files and memory needs /proc (Linux): {error}"
                ) from error
        return UsageRecord(subject.process_label, tuple(samples))

    return subject.memo.get("usage", run)


def _grows(values: list[int], allowance: int) -> bool:
    """Whether every round grew by more than ``allowance``."""
    return all(later - earlier > allowance for earlier, later in itertools.pairwise(values))


def _counts(values: list[int]) -> str:
    return " to ".join(str(value) for value in values)


@check(
    "no_resource_growth",
    "once warm, rounds of calls leave no more threads or open files behind",
)
def check_no_resource_growth(context: CheckContext) -> None:
    """Threads and file descriptors after the warm-up and after each round."""
    record = usage_record(context)
    leaks = []
    for kind, values in (
        ("threads", [sample.threads for sample in record.samples]),
        ("open files", [sample.open_files for sample in record.samples]),
    ):
        if _grows(values, SLACK):
            leaks.append(
                f"{kind} grew from {_counts(values)} over {ROUNDS} rounds of {ROUND_CALLS} "
                "calls after a warm-up"
            )
    if leaks:
        raise ConformanceFailure(
            f"{record.where} leaks: {'; '.join(leaks)}; release per-call threads, files and sockets"
        )


MEMORY_MEASURES: Final[tuple[tuple[str, Callable[[Usage], int | None]], ...]] = (
    ("resident memory", lambda usage: usage.rss),
    ("heap in use (malloc)", lambda usage: usage.heap),
    ("device memory", lambda usage: usage.device),
)


def _mib(values: list[int]) -> str:
    return " to ".join(f"{value / MIB:.1f}" for value in values)


@check(
    "no_memory_growth",
    "once warm, rounds of identical calls do not make the process's memory grow",
)
def check_no_memory_growth(context: CheckContext) -> None:
    """Resident, heap and device memory after the warm-up and after each round."""
    record = usage_record(context)
    allowance = ROUND_CALLS * MEMORY_TOLERANCE_PER_CALL
    leaks = []
    for measure, read in MEMORY_MEASURES:
        found = [read(sample) for sample in record.samples]
        values = [value for value in found if value is not None]
        if len(values) != len(found) or not _grows(values, allowance):
            continue
        per_call = (values[-1] - values[0]) / (ROUNDS * ROUND_CALLS)
        leaks.append(
            f"{measure} grew in each of {ROUNDS} rounds of {ROUND_CALLS} identical calls after "
            f"a warm-up, from {_mib(values)} MiB: about {per_call / 1024:.0f} KiB a call (the "
            f"tolerance is {MEMORY_TOLERANCE_PER_CALL // 1024} KiB a call)"
        )
    if leaks:
        raise ConformanceFailure(
            f"{record.where} leaks memory: {'; '.join(leaks)}; a call must not keep what it "
            "allocates (results kept in a list, a cache keyed by something new every call)"
        )


RULES: Final = (check_no_resource_growth, check_no_memory_growth)
"""This module's checks, in the order the suite runs them."""
