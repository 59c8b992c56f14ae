"""A version's recent answer times, for a canary's p99 bound.

A fixed ring of the last :data:`WINDOW` times, written on the request path (one
store into a preallocated list) and read by the rollout controller.
"""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["MIN_SAMPLES", "WINDOW", "LatencyWindow"]

WINDOW: Final = 1000
MIN_SAMPLES: Final = 200
"""Fewer answers than this say too little about a 99th percentile to act on."""


class LatencyWindow:
    """The last :data:`WINDOW` answer times of one version, in seconds."""

    __slots__ = ("_count", "_times")

    def __init__(self) -> None:
        self._times = [0.0] * WINDOW
        self._count = 0

    def record(self, seconds: float) -> None:
        """Note one answer's time."""
        self._times[self._count % WINDOW] = seconds
        self._count += 1

    @property
    def samples(self) -> int:
        """How many times the window holds."""
        return min(self._count, WINDOW)

    @property
    def answered(self) -> int:
        """How many answers were ever recorded."""
        return self._count

    def p99_ms(self) -> float | None:
        """The 99th percentile, in milliseconds (None before :data:`MIN_SAMPLES` answers)."""
        if self.samples < MIN_SAMPLES:
            return None
        return float(np.percentile(self._times[: self.samples], 99)) * 1000.0
