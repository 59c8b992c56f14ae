"""How many rows the next batch for a replica may take.

:class:`AimdBatchSize` is the additive-increase, multiplicative-decrease
controller of Clipper's paper: while batches come back well within the latency
objective (under it by more than ``margin``), the size grows by ``step`` rows;
when one takes longer than the objective, the size is cut by 10% (not TCP's 50%:
the best batch size moves slowly); in between it holds. It only grows after a
full batch, so an idle replica does not drift towards huge batches it has never
been measured at.
"""

from __future__ import annotations

import math
from typing import Protocol

__all__ = ["AimdBatchSize", "BatchSizeController", "FixedBatchSize"]


class BatchSizeController(Protocol):
    """A replica's batch size policy."""

    def target(self) -> int:
        """The most rows the next batch may take."""
        ...

    def record(self, rows: int, seconds: float) -> None:
        """Learn from a batch of ``rows`` rows that took ``seconds`` at the replica."""
        ...

    def limit(self, maximum: int | None) -> None:
        """Never go above ``maximum`` rows (the wrapper's or the configuration's bound)."""
        ...


class FixedBatchSize:
    """Always the same number of rows."""

    def __init__(self, size: int, maximum: int | None = None) -> None:
        self.size = size
        self.maximum = maximum

    def target(self) -> int:
        """The configured size, within the maximum."""
        return min(self.size, self.maximum) if self.maximum else self.size

    def record(self, rows: int, seconds: float) -> None:
        """Nothing to learn."""

    def limit(self, maximum: int | None) -> None:
        """Cap the size."""
        self.maximum = maximum


class AimdBatchSize:
    """Additive increase while under the objective, multiplicative decrease on a miss."""

    def __init__(
        self,
        objective_s: float,
        *,
        step: int = 4,
        margin: float = 0.1,
        decrease: float = 0.9,
        start: int = 1,
        maximum: int | None = None,
    ) -> None:
        self.objective_s = objective_s
        self.step = step
        self.margin = margin
        self.decrease = decrease
        self.maximum = maximum
        self._size = float(start)

    def target(self) -> int:
        """The current size, within the maximum."""
        size = max(1, int(self._size))
        return min(size, self.maximum) if self.maximum else size

    def record(self, rows: int, seconds: float) -> None:
        """Grow after a full batch well under the objective; shrink after a miss."""
        if seconds > self.objective_s:
            self._size = max(1.0, math.floor(self._size * self.decrease))
        elif seconds < self.objective_s * (1.0 - self.margin) and rows >= self.target():
            self._size += self.step
            if self.maximum:
                self._size = min(self._size, float(self.maximum))

    def limit(self, maximum: int | None) -> None:
        """Cap the size."""
        self.maximum = maximum
        if maximum:
            self._size = min(self._size, float(maximum))
