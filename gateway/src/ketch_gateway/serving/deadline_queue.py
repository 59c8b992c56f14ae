"""A model version's waiting requests, ordered by deadline, bounded in count."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Mapping
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
    trace: QueueStay | None = None
    """The request's spans in this queue, when it is traced."""


class DeadlineQueue:
    """Requests by deadline, earliest first; at most ``capacity`` of them.

    A request whose caller gave up (its deadline passed) is :meth:`discard`-ed and
    skipped when its turn comes: it is never sent to a wrapper.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.depth = 0
        self.rows = 0
        self._heap: list[tuple[float, int, PendingRequest]] = []
        self._order = itertools.count()
        self._waiting = asyncio.Event()
        self._arrived = asyncio.Event()

    def put(self, request: PendingRequest, *, force: bool = False) -> None:
        """Queue a request; QueueFull when full (unless ``force``: a retry keeps its place)."""
        if not force and self.depth >= self.capacity:
            raise QueueFull
        heapq.heappush(self._heap, (request.deadline, next(self._order), request))
        request.queued = True
        self.depth += 1
        self.rows += request.rows
        self._waiting.set()
        self._arrived.set()

    def discard(self, request: PendingRequest) -> bool:
        """Forget a queued request (its caller gave up); whether it was still queued."""
        if not request.queued:
            return False
        request.queued = False
        self.depth -= 1
        self.rows -= request.rows
        if not self.depth:
            self._waiting.clear()
        return True

    def take(self, max_rows: int) -> list[PendingRequest]:
        """The earliest-deadline requests, up to ``max_rows`` rows of one row shape.

        The first request is taken even when it alone is larger than ``max_rows``.
        """
        batch: list[PendingRequest] = []
        rows = 0
        while self._heap and rows < max_rows:
            request = self._heap[0][2]
            if not request.queued:
                heapq.heappop(self._heap)
                continue
            if batch and (
                rows + request.rows > max_rows or request.row_shapes != batch[0].row_shapes
            ):
                break
            heapq.heappop(self._heap)
            self.discard(request)
            batch.append(request)
            rows += request.rows
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
        pending = [request for _, _, request in self._heap if request.queued]
        for request in pending:
            self.discard(request)
        self._heap.clear()
        return pending
