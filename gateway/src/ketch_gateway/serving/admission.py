"""Deadline-aware admission: when a new request would be answered, given the queue ahead.

Each replica's batches are timed (:class:`~ketch_gateway.serving.service_time.ServiceTime`),
and its controller says how many rows its next batch takes. From those, the
healthy replicas together serve, per round of batches (every worker sending one
batch),

    round_rows = sum over replicas of  workers x target rows
    rows_per_s = sum over replicas of  workers x target rows / bound(target rows)

where ``bound`` is a cautious batch time (the fitted time plus twice its recent
deviation). A request that ``rows_ahead`` queued rows will go before (those with
a deadline not after its own) is answered, at the latest, after

    free_in + floor(rows_ahead / round_rows) x round_rows / rows_per_s + batch

seconds: until a worker is free (0 when one is idle, else the earliest expected
end of a call in flight), the full rounds that serve the rows ahead, and its
own batch (the slowest replica's bound). A request whose deadline comes sooner
is refused at the door (it could only expire in the queue). While no replica
has been timed, nothing is refused for its deadline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from ketch_gateway.serving.batch_control import BatchSizeController
from ketch_gateway.serving.replicas import Replica
from ketch_gateway.serving.service_time import ServiceTime

__all__ = ["Capacity", "ReplicaLane", "measure_capacity"]


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


@dataclass(frozen=True, slots=True)
class Capacity:
    """What the timed, healthy replicas serve, and when a worker is next free."""

    rows_per_s: float
    round_rows: int
    batch_s: float
    free_in_s: float

    def answer_in(self, rows_ahead: int) -> float:
        """Seconds until a request queued behind ``rows_ahead`` rows is answered, at the latest."""
        rounds = rows_ahead // self.round_rows
        return self.free_in_s + rounds * self.round_rows / self.rows_per_s + self.batch_s

    def drain_s(self, rows: int) -> float:
        """Seconds the replicas take to serve ``rows`` rows."""
        return rows / self.rows_per_s

    def retry_after(self, rows: int) -> str:
        """A ``Retry-After`` value: whole seconds until ``rows`` queued rows are served, >= 1."""
        return str(max(1, math.ceil(self.drain_s(rows))))


def measure_capacity(lanes: Iterable[ReplicaLane], now: float) -> Capacity | None:
    """The capacity of the healthy lanes whose replica has been timed; None when none has."""
    rows_per_s = 0.0
    round_rows = 0
    batch_s = 0.0
    workers = 0
    ends: list[float] = []
    for lane in lanes:
        if not lane.replica.healthy or not lane.service.known:
            continue
        rows = lane.controller.target()
        seconds = lane.service.bound(rows)
        if seconds <= 0.0:
            continue
        rows_per_s += lane.workers * rows / seconds
        round_rows += lane.workers * rows
        batch_s = max(batch_s, seconds)
        workers += lane.workers
        ends.extend(lane.calls.values())
    if not rows_per_s:
        return None
    free_in = max(min(ends) - now, 0.0) if len(ends) >= workers else 0.0
    return Capacity(rows_per_s, round_rows, batch_s, free_in)
