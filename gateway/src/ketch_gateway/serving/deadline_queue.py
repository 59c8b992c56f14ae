"""A model version's waiting requests, ordered by deadline, bounded in count."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ketch_gateway.observability.spans import QueueStay

__all__ = ["DeadlineQueue", "PendingRequest", "QueueFull"]

RowShapes = tuple[tuple[int, ...], ...]


class QueueFull(Exception):
    """The queue already holds its maximum number of requests."""


@dataclass(eq=False, slots=True)
class PendingRequest:
    """One request waiting for its rows to be batched and answered through ``future``."""

    inputs: Mapping[str, np.ndarray]
    rows: int
    deadline: float
    enqueued: float
    future: asyncio.Future[dict[str, np.ndarray]]
    row_shapes: RowShapes = ()
    retried: bool = False
    queued: bool = field(default=False)
    order: int = 0
    """The queue's tie-break between equal deadlines: first come, first served."""
    trace: QueueStay | None = None
    """The request's spans in this queue, when it is traced."""


class DeadlineQueue:
    """Requests by deadline, earliest first; at most ``capacity`` of them.

    A request whose caller gave up (its deadline passed) is :meth:`discard`-ed: it is
    never sent to a wrapper. The requests are kept in a list sorted by deadline, so
    that the rows due before a given deadline (what a new request would wait behind)
    can be counted, and the requests that can no longer be served in time, which are
    at its front, dropped together.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.depth = 0
        self.rows = 0
        self._entries: list[tuple[float, int, PendingRequest]] = []
        self._order = itertools.count()
        self._waiting = asyncio.Event()
        self._arrived = asyncio.Event()

    def put(self, request: PendingRequest, *, force: bool = False) -> None:
        """Queue a request; QueueFull when full (unless ``force``: a retry keeps its place)."""
        if not force and self.depth >= self.capacity:
            raise QueueFull
        request.order = next(self._order)
        bisect.insort(self._entries, (request.deadline, request.order, request))
        request.queued = True
        self.depth += 1
        self.rows += request.rows
        self._waiting.set()
        self._arrived.set()

    def _removed(self, request: PendingRequest) -> None:
        request.queued = False
        self.depth -= 1
        self.rows -= request.rows
        if not self.depth:
            self._waiting.clear()

    def discard(self, request: PendingRequest) -> bool:
        """Forget a queued request (its caller gave up); whether it was still queued."""
        if not request.queued:
            return False
        index = bisect.bisect_left(self._entries, (request.deadline, request.order))
        del self._entries[index]
        self._removed(request)
        return True

    @property
    def last_deadline(self) -> float | None:
        """The latest deadline queued; None when the queue is empty."""
        return self._entries[-1][0] if self._entries else None

    def rows_before(self, deadline: float) -> int:
        """The rows queued whose deadline is not after ``deadline`` (they go first)."""
        index = bisect.bisect_right(self._entries, (deadline, math.inf))
        if index == len(self._entries):
            return self.rows
        if index <= len(self._entries) // 2:
            return sum(entry[2].rows for entry in self._entries[:index])
        return self.rows - sum(entry[2].rows for entry in self._entries[index:])

    def drop_late(self, before: float) -> list[PendingRequest]:
        """Take out, and return, the requests whose deadline is before ``before``."""
        index = bisect.bisect_left(self._entries, (before,))
        late = [entry[2] for entry in self._entries[:index]]
        del self._entries[:index]
        for request in late:
            self._removed(request)
        return late

    def take(
        self, max_rows: int, expected_end: Callable[[int], float] | None = None
    ) -> list[PendingRequest]:
        """The earliest-deadline requests, up to ``max_rows`` rows of one row shape.

        With ``expected_end`` (when a batch of so many rows sent now would be answered),
        only requests that batch would answer before their deadline are taken; the
        others stay queued (a quicker replica may serve them). The first request is
        taken even when it alone is larger than ``max_rows``.
        """
        entries = self._entries
        start = 0
        if expected_end is not None:
            start = bisect.bisect_left(entries, (expected_end(1),))
            while start < len(entries) and entries[start][0] < expected_end(entries[start][2].rows):
                start += 1
        batch: list[PendingRequest] = []
        rows = 0
        end = start
        while end < len(entries) and rows < max_rows:
            request = entries[end][2]
            if batch and (
                rows + request.rows > max_rows
                or request.row_shapes != batch[0].row_shapes
                or (
                    expected_end is not None
                    and batch[0].deadline < expected_end(rows + request.rows)
                )
            ):
                break
            batch.append(request)
            rows += request.rows
            end += 1
        del entries[start:end]
        for request in batch:
            self._removed(request)
        return batch

    async def wait(self) -> None:
        """Return once a request is queued."""
        await self._waiting.wait()

    async def wait_for_rows(self, rows: int, seconds: float) -> None:
        """Wait until ``rows`` rows are queued, or ``seconds`` have passed."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while self.rows < rows and (left := until - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def drain(self) -> list[PendingRequest]:
        """Every queued request, taken out (for shutdown)."""
        pending = [entry[2] for entry in self._entries]
        self._entries.clear()
        for request in pending:
            self._removed(request)
        return pending
