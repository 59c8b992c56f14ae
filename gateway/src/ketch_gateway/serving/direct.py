"""The ``none`` batching policy: each request goes to the next healthy replica at once.

A request whose replica turns out to be unreachable is sent once more, to the next
healthy replica, when its time allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ketch import WrapperCallError
from ketch_gateway.observability.trace_context import current_trace, start_batch
from ketch_gateway.serving.predictor import Dispatcher, Prediction
from ketch_gateway.serving.replicas import (
    UNREACHABLE_CODES,
    Replica,
    ReplicaSet,
    wrapper_error,
)

__all__ = ["DirectPredictor"]


class DirectPredictor(Dispatcher):
    """One wrapper call per request, to the replicas in turn."""

    def __init__(self, model: str, replicas: ReplicaSet, version: str = "") -> None:
        self.model = model
        self.version = version
        self.replicas = replicas

    def replicas_changed(self) -> None:
        """Nothing to do: each call picks a replica."""

    def set_objective(self, seconds: float) -> None:
        """Nothing to do: there are no batches."""

    def set_max_batch(self, rows: int | None) -> None:
        """Nothing to do: a request is sent as it came."""

    async def close(self) -> None:
        """Nothing waits here."""

    def describe(self) -> dict[str, Any]:
        """What the admin API shows of it."""
        return {"policy": "none"}

    async def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        timeout: float,
        outputs: Sequence[str] | None = None,
    ) -> Prediction:
        """Send the rows to the next healthy replica (and once more to another, if it is gone)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            return await self._call(self.replicas.pick(), inputs, outputs, timeout)
        except WrapperCallError as error:
            left = deadline - loop.time()
            if error.code not in UNREACHABLE_CODES or left <= 0:
                raise wrapper_error(self.replicas.label, error) from None
        try:
            return await self._call(self.replicas.pick(), inputs, outputs, left)
        except WrapperCallError as error:
            raise wrapper_error(self.replicas.label, error) from None

    async def _call(
        self,
        replica: Replica,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None,
        timeout: float,
    ) -> Prediction:
        """One call to ``replica``, traced (a stay and a batch of its own) when the request is."""
        traced = current_trace()
        batch = None
        if traced is not None:
            rows = len(next(iter(inputs.values())))
            stay = traced.stay(self.model, self.version, rows, queued=False)
            batch = start_batch([stay], self.model, self.version, replica.address, rows)
        try:
            with replica.call():
                answer = await replica.client.infer(
                    inputs,
                    model=self.model,
                    outputs=outputs,
                    timeout=timeout,
                    metadata=batch.metadata if batch is not None else None,
                )
        except WrapperCallError as error:
            if batch is not None:
                batch.end(f"{error.code}: {error.message}")
            replica.failed(error)
            raise
        if batch is not None:
            batch.end()
        return Prediction(answer)
