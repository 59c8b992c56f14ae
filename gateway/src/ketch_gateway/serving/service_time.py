"""How long a replica takes to answer a batch, learned from the batches it answered.

A batch of ``r`` rows is modelled as taking ``fixed + per_row * r`` seconds: a
cost per call (the round trip, decoding, the framework's start-up) and a cost
per row. Both come from an exponentially weighted least-squares fit over the
replica's recent batches (each new batch weighs ``weight``, so the fit follows a
replica that slows down or speeds up within a few dozen batches). While every
batch has had the same size, the rows cannot separate the two costs, and the
whole time counts as per-call cost; that estimate is exact at that size and
errs on the safe side (too slow) for smaller batches.

:meth:`ServiceTime.expected` is the fit; :attr:`ServiceTime.deviation_s` is the
mean absolute deviation of recent batches from it (how much one batch's time
can be trusted).
"""

from __future__ import annotations

from typing import Final

__all__ = ["ServiceTime"]

WEIGHT: Final = 0.05
"""How much each new batch counts in the running fit."""
WARM_UP: Final = 3
"""Batches measured before the estimate is used."""
_SAME_SIZE: Final = 0.25
"""Below this variance of the batch sizes (rows squared), the sizes cannot separate the costs."""


class ServiceTime:
    """One replica's batch latency, ``fixed + per_row * rows`` seconds, as it is measured."""

    def __init__(self, weight: float = WEIGHT) -> None:
        self.weight = weight
        self.batches = 0
        self._rows = 0.0
        self._seconds = 0.0
        self._rows_squared = 0.0
        self._rows_seconds = 0.0
        self.deviation_s = 0.0
        self.fixed_s = 0.0
        self.per_row_s = 0.0

    @property
    def known(self) -> bool:
        """Whether enough batches were measured to trust the estimate."""
        return self.batches >= WARM_UP

    def record(self, rows: int, seconds: float) -> None:
        """Learn from a batch of ``rows`` rows that the replica answered in ``seconds``."""
        if self.batches:
            miss = abs(seconds - self.expected(rows))
            self.deviation_s += self.weight * (miss - self.deviation_s)
        # the first batch sets the averages; later ones move them by ``weight``
        share = 1.0 if not self.batches else max(self.weight, 1.0 / (self.batches + 1))
        self.batches += 1
        self._rows += share * (rows - self._rows)
        self._seconds += share * (seconds - self._seconds)
        self._rows_squared += share * (rows * rows - self._rows_squared)
        self._rows_seconds += share * (rows * seconds - self._rows_seconds)
        self._refit()

    def record_at_least(self, rows: int, seconds: float) -> None:
        """A batch gave up after ``seconds`` unanswered: learn, if that is slower than expected."""
        if not self.known or seconds > self.expected(rows):
            self.record(rows, seconds)

    def _refit(self) -> None:
        variance = self._rows_squared - self._rows * self._rows
        slope = 0.0
        if variance > _SAME_SIZE:
            slope = max((self._rows_seconds - self._rows * self._seconds) / variance, 0.0)
        fixed = self._seconds - slope * self._rows
        if fixed < 0.0:  # all of it is per row
            fixed, slope = 0.0, self._seconds / max(self._rows, 1.0)
        self.fixed_s, self.per_row_s = fixed, slope

    def expected(self, rows: int) -> float:
        """The seconds a batch of ``rows`` rows is expected to take."""
        return self.fixed_s + self.per_row_s * rows

    def describe(self) -> dict[str, float | int]:
        """What the admin API shows of it, in milliseconds."""
        return {
            "batches": self.batches,
            "fixed_ms": round(self.fixed_s * 1000.0, 3),
            "per_row_ms": round(self.per_row_s * 1000.0, 4),
            "deviation_ms": round(self.deviation_s * 1000.0, 3),
        }
