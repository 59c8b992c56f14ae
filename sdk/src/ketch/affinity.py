"""Pinning a wrapper process to chosen CPUs (``ketch serve --cpus``).

A pinned wrapper keeps the framework's code and data in the caches of the cores it
runs on, and its gRPC thread hands each call to a worker on the same cores. It is
the same as starting the process under ``taskset -c LIST``; the option exists so that
a supervisor (the gateway's ``[[models.versions]]`` with a plugin, a Kubernetes
container) can say it in the command line it already writes. Not pinned by default:
which cores help depends on what else runs on the host.
"""

from __future__ import annotations

import os

__all__ = ["parse_cpu_list", "pin_process"]


def _cpu_number(text: str, listed: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"CPU list {listed!r}: {text.strip()!r} is not a CPU number")
    return int(text)


def parse_cpu_list(text: str) -> frozenset[int]:
    """The CPUs a list such as ``0,2-3`` names (``taskset``'s and Linux's list format)."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        low = _cpu_number(first, text)
        high = _cpu_number(last, text) if dash else low
        if high < low:
            raise ValueError(f"CPU list {text!r}: the range {part.strip()!r} runs backwards")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def _listed(cpus: frozenset[int] | set[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def pin_process(cpus: frozenset[int]) -> None:
    """Run this process, and the threads it starts from now on, on ``cpus`` only.

    ValueError names the CPUs that this process may not use (absent, offline, or
    outside its container's set).
    """
    allowed = os.sched_getaffinity(0)
    outside = cpus - allowed
    if outside:
        raise ValueError(
            f"--cpus: CPU(s) {_listed(set(outside))} are not available to this process; "
            f"it may run on {_listed(allowed)}"
        )
    os.sched_setaffinity(0, cpus)
