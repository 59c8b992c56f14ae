"""Shadow traffic: a share of a model's requests also sent to another version, off the path.

The caller's answer never waits for the shadow: a mirrored request is put in a
bounded queue (dropped, and counted, when it is full) and a few workers send it to
the shadow version later. When the shadow answers, its answers are compared with
the ones the caller got (agreement), and kept next to them by query id, so that
feedback joins both (each one's error rate).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ketch_gateway.background import cancel_and_wait
from ketch_gateway.correction.rows import rows_from_outputs
from ketch_gateway.errors import ApiError
from ketch_gateway.rollouts.answers import agree
from ketch_gateway.rollouts.config import ShadowConfig
from ketch_gateway.rollouts.metrics import RolloutMetrics
from ketch_gateway.serving.models import Model

__all__ = ["MirroredQuery", "ShadowCounts", "ShadowMirror"]

_log = logging.getLogger(__name__)

WORKERS: Final = 4


@dataclass(frozen=True)
class MirroredQuery:
    """A request the caller was answered for, waiting for the shadow."""

    query_id: str | None
    inputs: Mapping[str, np.ndarray]
    answers: Sequence[Any]


@dataclass
class ShadowCounts:
    """What this gateway's shadow did: requests mirrored, dropped, failed, compared, agreed."""

    mirrored: int = 0
    dropped: int = 0
    failed: int = 0
    compared: int = 0
    agreed: int = 0

    def as_json(self) -> dict[str, Any]:
        """The counts, and the agreement rate (None before any comparison)."""
        return {
            "mirrored": self.mirrored,
            "dropped": self.dropped,
            "failed": self.failed,
            "compared": self.compared,
            "agreed": self.agreed,
            "agreement_rate": self.agreed / self.compared if self.compared else None,
        }


ShadowAnswered = Callable[[MirroredQuery, list[Any]], None]
"""Told of each shadow answer (its rows' answers), to keep it by query id."""


class ShadowMirror:
    """Mirrors ``config.share`` of ``model``'s answered requests to ``config.version``."""

    def __init__(
        self,
        model: Model,
        config: ShadowConfig,
        metrics: RolloutMetrics,
        on_answer: ShadowAnswered,
    ) -> None:
        self.model = model
        self.config = config
        self.counts = ShadowCounts()
        self._metrics = metrics
        self._on_answer = on_answer
        self._queue: asyncio.Queue[MirroredQuery] = asyncio.Queue(config.queue)
        self._workers: list[asyncio.Task[None]] = []
        outcomes = metrics.shadow_requests
        self._dropped = outcomes.labels(model.name, config.version, "dropped")
        self._failed = outcomes.labels(model.name, config.version, "failed")
        self._compared = outcomes.labels(model.name, config.version, "compared")
        self._agreed = metrics.shadow_agreements.labels(model.name, config.version)

    def offer(self, query: MirroredQuery) -> None:
        """Queue ``query`` for the shadow; drop it (counted) when the queue is full."""
        self.counts.mirrored += 1
        try:
            self._queue.put_nowait(query)
        except asyncio.QueueFull:
            self.counts.dropped += 1
            self._dropped.inc()

    @property
    def waiting(self) -> int:
        """Mirrored requests waiting for the shadow."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the workers."""
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(WORKERS)]

    async def stop(self) -> None:
        """Stop the workers; mirrored requests still queued are dropped."""
        for worker in self._workers:
            await cancel_and_wait(worker)
        self._workers = []

    async def _work(self) -> None:
        while True:
            query = await self._queue.get()
            try:
                answers = await self._ask(query)
            except (ApiError, TimeoutError) as error:
                self.counts.failed += 1
                self._failed.inc()
                _log.debug("shadow %s: %s", self.config.version, error)
                continue
            except Exception:
                self.counts.failed += 1
                self._failed.inc()
                _log.exception("shadow %s failed", self.config.version)
                continue
            agreed = sum(agree(a, b) for a, b in zip(query.answers, answers, strict=False))
            self.counts.compared += len(answers)
            self.counts.agreed += agreed
            self._compared.inc(len(answers))
            self._agreed.inc(agreed)
            self._on_answer(query, answers)

    async def _ask(self, query: MirroredQuery) -> list[Any]:
        version = self.model.version(self.config.version)
        async with asyncio.timeout(self.model.timeout_s):
            prediction = await version.predictor.predict(query.inputs, timeout=self.model.timeout_s)
        return rows_from_outputs(prediction.outputs, len(query.answers))

    def describe(self) -> dict[str, Any]:
        """The shadow's settings and this gateway's counts."""
        return {**self.config.as_json(), "waiting": self.waiting, **self.counts.as_json()}
