"""Deadline-aware admission: when a new request would be answered, given the queue ahead.

Each replica's batches are timed (:class:`~ketch_gateway.serving.service_time.ServiceTime`),
and its controller says how many rows its next batch takes. From those, the
healthy replicas together serve, per round of batches (every worker sending one
batch),

    round_rows = sum over replicas of  workers x target rows
    rows_per_s = sum over replicas of  workers x target rows / expected(target rows)

A request that ``rows_ahead`` queued rows will go before (those with a deadline
not after its own) is answered after about

    free_in + 1.1 x n x round_rows / rows_per_s + batch + 2 x spread x sqrt(n + 1)

seconds, with ``n = floor(rows_ahead / round_rows)``: until a worker is free (0
when one is idle, else the earliest expected end of a call in flight), the ``n``
full rounds that serve the rows ahead, with a tenth more for what the fit cannot
foresee over a long wait (replicas drifting slower, batches below their target
size), its own batch (the slowest replica's expected time), and a margin for
batches that run long: twice the replicas' largest mean deviation, growing as
the square root of the batches waited for (deviations of successive batches
partly cancel out). A request whose deadline
comes sooner is refused at the door: it could only expire in the queue. While
no replica has been timed, nothing is refused for its deadline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from ketch_gateway.serving.batch_control import BatchSizeController
from ketch_gateway.serving.replicas import Replica
from ketch_gateway.serving.service_time import ServiceTime

__all__ = ["ROUNDS_MARGIN", "Capacity", "ReplicaLane", "measure_capacity"]

ROUNDS_MARGIN: Final = 1.1
"""The rounds ahead of a request are counted a tenth longer than their expected time."""


@dataclass(eq=False)
class ReplicaLane:
    """What a version's batcher knows of one replica, and its calls in flight."""

    replica: Replica
    controller: BatchSizeController
    workers: int
    service: ServiceTime = field(default_factory=ServiceTime)
    calls: dict[int, float] = field(default_factory=dict)
    """Each call in flight's expected end (event loop time), by a number of its own."""

    def expected_end(self, rows: int, now: float) -> float:
        """When a batch of ``rows`` rows sent now is expected back (now, before any timing)."""
        return now + self.service.expected(rows) if self.service.known else now

    def safe_end(self, rows: int, now: float) -> float:
        """When a batch of ``rows`` rows sent now is back, but for an unusually slow one.

        The expected end plus twice the mean deviation: a batch only takes rows whose
        deadline is no sooner, so that few rows are computed after their caller gave up.
        """
        if not self.service.known:
            return now
        return now + self.service.expected(rows) + 2.0 * self.service.deviation_s


@dataclass(frozen=True, slots=True)
class Capacity:
    """What the timed, healthy replicas serve, and when a worker is next free."""

    rows_per_s: float
    round_rows: int
    batch_s: float
    free_in_s: float
    spread_s: float = 0.0

    def answer_in(self, rows_ahead: int) -> float:
        """Seconds until a request queued behind ``rows_ahead`` rows is answered."""
        rounds = rows_ahead // self.round_rows
        queued = ROUNDS_MARGIN * rounds * self.round_rows / self.rows_per_s
        waited = self.free_in_s + queued + self.batch_s
        return waited + 2.0 * self.spread_s * math.sqrt(rounds + 1)

    def drain_s(self, rows: int) -> float:
        """Seconds the replicas take to serve ``rows`` rows."""
        return rows / self.rows_per_s

    def retry_after(self, rows: int, horizon_s: float) -> str:
        """A ``Retry-After`` value: whole seconds until ``rows`` queued rows are served, >= 1.

        At most ``horizon_s`` (until the last queued deadline): by then the queue is
        gone, whether served or expired.
        """
        return str(max(1, math.ceil(min(self.drain_s(rows), horizon_s))))


def measure_capacity(lanes: Iterable[ReplicaLane], now: float) -> Capacity | None:
    """The capacity of the healthy lanes whose replica has been timed; None when none has."""
    rows_per_s = 0.0
    round_rows = 0
    batch_s = 0.0
    spread_s = 0.0
    workers = 0
    ends: list[float] = []
    for lane in lanes:
        if not lane.replica.healthy or not lane.service.known:
            continue
        rows = lane.controller.target()
        seconds = lane.service.expected(rows)
        if seconds <= 0.0:
            continue
        rows_per_s += lane.workers * rows / seconds
        round_rows += lane.workers * rows
        batch_s = max(batch_s, seconds)
        spread_s = max(spread_s, lane.service.deviation_s)
        workers += lane.workers
        ends.extend(lane.calls.values())
    if not rows_per_s:
        return None
    free_in = max(min(ends) - now, 0.0) if len(ends) >= workers else 0.0
    return Capacity(rows_per_s, round_rows, batch_s, free_in, spread_s)
