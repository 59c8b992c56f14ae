"""Closed-loop HTTP load for the multi-host tests and ``bench/cluster.py``.

:class:`ClosedLoop` runs ``clients`` concurrent clients in a thread of its own
(one asyncio loop, httpx): each sends its next request as soon as its last one is
answered, until stopped or until ``total`` requests were sent, and every answer
is kept as an :class:`Outcome` (a connection that failed is status 0), so that a
test can say exactly which requests failed and when.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
import numpy as np

__all__ = ["ClosedLoop", "Outcome", "Request", "percentile"]

Request = Callable[[int, int], tuple[str, dict[str, Any]]]
"""From a client's index and the request's number (0, 1, ... over every client) to the
URL and JSON body to POST."""


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent and answered (monotonic seconds), its status and body."""

    client: int
    started: float
    finished: float
    status: int
    body: Any

    @property
    def latency(self) -> float:
        """Seconds from sending to the answer."""
        return self.finished - self.started


@dataclass
class ClosedLoop:
    """``clients`` clients sending ``request(client, n)`` back to back until stopped.

    ``pause_after_error``: seconds a client waits after an answer that is not 2xx.
    """

    request: Request
    clients: int
    timeout: float = 30.0
    total: int | None = None
    pause_after_error: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        """Stop sending, wait for the answers in flight; every outcome."""
        self._stop.set()
        return self.wait()

    def wait(self) -> list[Outcome]:
        """Wait until every client has stopped (``total`` reached, or stopped); every outcome."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self.outcomes

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
            await asyncio.gather(*(self._client(client, index) for index in range(self.clients)))

    async def _client(self, client: httpx.AsyncClient, index: int) -> None:
        while not self._stop.is_set():
            number = next(self._numbers)
            if self.total is not None and number >= self.total:
                return
            url, body = self.request(index, number)
            started = time.monotonic()
            try:
                response = await client.post(url, json=body)
                status, answer = response.status_code, _json(response)
            except httpx.TransportError as error:
                status, answer = 0, f"{type(error).__name__}: {error}"
            self.outcomes.append(Outcome(index, started, time.monotonic(), status, answer))
            if not 200 <= status < 300 and self.pause_after_error:
                await asyncio.sleep(self.pause_after_error)  # as a client told Retry-After

    def since(self, moment: float) -> list[Outcome]:
        """The outcomes of requests sent at or after ``moment``."""
        return [outcome for outcome in list(self.outcomes) if outcome.started >= moment]


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def percentile(values: list[float], share: float) -> float:
    """The ``share`` (0..100) percentile of ``values`` (0 for none)."""
    return float(np.percentile(values, share)) if values else 0.0
