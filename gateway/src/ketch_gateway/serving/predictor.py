"""How a model version turns requests into outputs.

The request path asks a :class:`Predictor` for outputs and never talks to
replicas itself. :class:`DirectPredictor` sends each request straight to the
next healthy replica (the ``none`` batching policy);
:class:`ketch_gateway.serving.batcher.BatchingPredictor` queues requests by deadline
and batches them (``aimd`` and ``fixed``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ketch import WrapperCallError
from ketch_gateway.errors import ApiError, status_for_wrapper_code
from ketch_gateway.serving.replicas import ReplicaSet

__all__ = ["DirectPredictor", "Predictor", "wrapper_error"]


class Predictor(Protocol):
    """Outputs for a batch of rows, within ``timeout`` seconds."""

    async def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        timeout: float,
        outputs: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """The model's outputs; an ApiError (400, 404, 503, 504, 500) when there are none."""
        ...

    def replicas_changed(self) -> None:
        """The replica set gained or lost a replica."""
        ...

    def set_objective(self, seconds: float) -> None:
        """The latency the model's batches should stay under."""
        ...

    def set_max_batch(self, rows: int | None) -> None:
        """The most rows one call to a replica may carry."""
        ...

    async def close(self) -> None:
        """Answer what is waiting and stop (the gateway is stopping)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the admin API shows of it."""
        ...


def wrapper_error(label: str, error: WrapperCallError) -> ApiError:
    """The HTTP error for a failed wrapper call, keeping the wrapper's message."""
    kind = status_for_wrapper_code(error.code)
    if kind is ApiError:
        return ApiError(f"{label} failed: {error.code}: {error.message}")
    return kind(error.message)


class DirectPredictor:
    """One wrapper call per request, to the replicas in turn."""

    def __init__(self, model: str, replicas: ReplicaSet) -> None:
        self.model = model
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
    ) -> dict[str, np.ndarray]:
        """Send the batch to the next healthy replica."""
        replica = self.replicas.pick()
        try:
            return await replica.client.infer(
                inputs, model=self.model, outputs=outputs, timeout=timeout
            )
        except WrapperCallError as error:
            replica.failed(error)
            raise wrapper_error(self.replicas.label, error) from None
