"""The predictor chain: one protocol for every link between the routes and a version's replicas.

A request for a model version goes to the head of the version's chain, which
:func:`~ketch_gateway.serving.chain.build_chain` builds from the version's
configuration and its wrapper's capabilities: a cache when one is configured,
then the dispatcher that sends rows to replicas (a deadline queue and batcher,
or straight to the next replica). Every link answers with a :class:`Prediction`,
and every link answers :meth:`Predictor.lookup`: a cache with what it holds,
the others with "nothing cached". Callers never ask which links there are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

__all__ = ["CacheOutcome", "Dispatcher", "Prediction", "Predictor", "RowAnswer"]

RowAnswer = dict[str, np.ndarray]
"""One row's outputs, each with a leading dimension of 1."""

CacheOutcome = Literal["exact", "approximate", "coalesced", "miss"]
"""Where a row's answer came from, when a cache was on its way."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """A request's outputs and, where a cache saw it, where each row's answer came from."""

    outputs: dict[str, np.ndarray]
    sources: tuple[CacheOutcome, ...] | None = None
    """One outcome per row; None when no cache was on the way."""


class Predictor(Protocol):
    """A link of a model version's chain: outputs for rows, within ``timeout`` seconds."""

    async def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        timeout: float,
        outputs: Sequence[str] | None = None,
    ) -> Prediction:
        """The outputs (those named in ``outputs``, else all); an ApiError when there are none.

        The errors are 400 (the wrapper refused the input), 404, 503 (no replica, or
        the queue is full), 504 (the deadline passed) and 500.
        """
        ...

    def lookup(self, inputs: Mapping[str, np.ndarray], row: int = 0) -> RowAnswer | None:
        """The answer cached for one row, found exactly; None when nothing is cached."""
        return None

    async def close(self) -> None:
        """Answer what is waiting and stop (the gateway is stopping)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the admin API shows of it (and of the links behind it)."""
        ...


class Dispatcher(Predictor, Protocol):
    """The chain's last link: it sends rows to the version's replicas, and is told about them."""

    def replicas_changed(self) -> None:
        """The replica set gained or lost a replica."""
        ...

    def set_objective(self, seconds: float) -> None:
        """The latency the version's batches should stay under."""
        ...

    def set_max_batch(self, rows: int | None) -> None:
        """The most rows one call to a replica may carry."""
        ...
