"""Prediction caching in front of a model version's queue.

Rows are cached one by one (the contract makes each row's answer independent of
its batch-mates): a request's rows that were answered before come from the
cache, identical rows already on their way to a replica wait for that one call,
and only the rest go through the queue, as one request. With the approximate
cache on, a row similar enough to one answered before reuses its answer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ketch import Signature
from ketch_gateway.control.config import CacheConfig
from ketch_gateway.metrics import Metrics
from ketch_gateway.observability.trace_context import current_trace
from ketch_gateway.serving.exact_cache import ExactCache, row_key
from ketch_gateway.serving.predictor import CacheOutcome, Prediction, Predictor, RowAnswer
from ketch_gateway.serving.similarity_cache import HyperplaneIndex, MinHashIndex, SimilarityIndex

__all__ = ["CachingPredictor", "approximate_index"]


def approximate_index(
    config: CacheConfig, signature: Signature
) -> SimilarityIndex[Any, Any] | None:
    """The similarity index that suits the model's single input, if any."""
    if not config.approximate or len(signature.inputs) != 1:
        return None
    spec = signature.inputs[0]
    if spec.datatype == "BYTES" and spec.row_shape == ():
        return MinHashIndex(
            bits=config.minhash_rows,
            tables=config.minhash_bands,
            threshold=config.text_threshold,
            capacity=config.approximate_entries,
        )
    if spec.datatype != "BYTES" and all(d > 0 for d in spec.row_shape):
        return HyperplaneIndex(
            int(np.prod(spec.row_shape)),
            bits=config.bits,
            tables=config.tables,
            threshold=config.threshold,
            capacity=config.approximate_entries,
        )
    return None


class CachingPredictor(Predictor):
    """A link that answers from the cache what it can and asks ``inner`` for the rest.

    ``approximate``, when given, is the similarity index of the approximate cache.
    """

    def __init__(
        self,
        model: str,
        version: str,
        inner: Predictor,
        config: CacheConfig,
        metrics: Metrics,
        *,
        approximate: SimilarityIndex[Any, Any] | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.inner = inner
        self.config = config
        self.exact = ExactCache(config.max_bytes, config.ttl_s)
        self.approximate = approximate
        self._pending: dict[bytes, asyncio.Future[RowAnswer]] = {}
        labels = (model, version)
        self._hits = metrics.cache_lookups.labels(*labels, "exact")
        self._approximate_hits = metrics.cache_lookups.labels(*labels, "approximate")
        self._coalesced = metrics.cache_lookups.labels(*labels, "coalesced")
        self._misses = metrics.cache_lookups.labels(*labels, "miss")
        self._evictions = metrics.cache_evictions.labels(*labels)
        self._bytes = metrics.cache_bytes.labels(*labels)
        self._evicted = 0
        self._span_labels = {"ketch.model": model, "ketch.version": version}

    async def close(self) -> None:
        """Close the links behind and forget the cache."""
        await self.inner.close()
        self.exact.clear()

    def describe(self) -> dict[str, Any]:
        """The state of the links behind, and the cache's."""
        return {
            **self.inner.describe(),
            "cache": {
                "entries": len(self.exact),
                "bytes": self.exact.bytes_held,
                "approximate_entries": len(self.approximate) if self.approximate else 0,
            },
        }

    def lookup(self, inputs: Mapping[str, np.ndarray], row: int = 0) -> RowAnswer | None:
        """The answer cached for one row, exactly (for feedback, which needs the prediction)."""
        return self.exact.get(row_key(inputs, row))

    async def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        timeout: float,
        outputs: Sequence[str] | None = None,
    ) -> Prediction:
        """Every row's answer, and where it came from; only the misses go on, as one request."""
        count = len(next(iter(inputs.values())))
        traced = current_trace()
        span = traced.child("ketch.cache.lookup", self._span_labels) if traced is not None else None
        keys = [row_key(inputs, row) for row in range(count)]
        answers: list[RowAnswer | None] = [None] * count
        sources: list[CacheOutcome] = ["miss"] * count
        waiting: dict[int, asyncio.Future[RowAnswer]] = {}
        missing: list[int] = []
        loop = asyncio.get_running_loop()
        for row, key in enumerate(keys):
            cached = self.exact.get(key)
            if cached is not None:
                answers[row], sources[row] = cached, "exact"
                self._hits.inc()
            elif key in self._pending:
                waiting[row], sources[row] = self._pending[key], "coalesced"
                self._coalesced.inc()
            elif (similar := self._similar(inputs, row)) is not None:
                answers[row], sources[row] = similar, "approximate"
                self._approximate_hits.inc()
            else:
                self._pending[key] = loop.create_future()
                missing.append(row)
                self._misses.inc()
        if span is not None:
            found = Counter(sources)
            span.set_attribute("ketch.rows", count)
            for outcome in ("exact", "approximate", "coalesced", "miss"):
                span.set_attribute(f"ketch.cache.{outcome}", found[outcome])
            span.end()
        if missing:
            await self._fetch(inputs, keys, missing, answers, timeout)
        for row, future in waiting.items():
            answers[row] = await asyncio.wait_for(asyncio.shield(future), timeout)
        names = outputs or list(next(answer for answer in answers if answer is not None))
        combined = {
            name: np.concatenate([a[name] for a in answers if a is not None]) for name in names
        }
        return Prediction(combined, tuple(sources))

    def _similar(self, inputs: Mapping[str, np.ndarray], row: int) -> RowAnswer | None:
        if self.approximate is None:
            return None
        found = self.approximate.lookup(next(iter(inputs.values()))[row])
        return found[0] if found else None

    async def _fetch(
        self,
        inputs: Mapping[str, np.ndarray],
        keys: list[bytes],
        missing: list[int],
        answers: list[RowAnswer | None],
        timeout: float,
    ) -> None:
        subset = (
            inputs
            if len(missing) == len(keys)
            else {name: array[missing] for name, array in inputs.items()}
        )
        try:
            fetched = (await self.inner.predict(subset, timeout=timeout)).outputs
        except BaseException as error:
            for row in missing:
                future = self._pending.pop(keys[row])
                if isinstance(error, Exception):
                    future.set_exception(error)
                    future.exception()  # retrieved: rows that no one coalesced on need no warning
                else:
                    future.cancel()
            raise
        for position, row in enumerate(missing):
            answer = {
                name: array[position : position + 1].copy() for name, array in fetched.items()
            }
            answers[row] = answer
            self.exact.put(keys[row], answer)
            if self.approximate is not None:
                self.approximate.add(next(iter(subset.values()))[position], answer)
            future = self._pending.pop(keys[row])
            if not future.done():
                future.set_result(answer)
        self._bytes.set(self.exact.bytes_held)
        if self.exact.evictions != self._evicted:
            self._evictions.inc(self.exact.evictions - self._evicted)
            self._evicted = self.exact.evictions
