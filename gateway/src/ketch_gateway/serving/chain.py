"""Building a model version's predictor chain: the one place that knows which links there are.

The chain is built from the model's configuration and, once a replica has
answered, from the wrapper's signature and capabilities: the approximate cache
needs to know the input, and a model that learns online is not cached unless
its answers expire.
"""

from __future__ import annotations

import logging

from ketch import Capabilities, Signature
from ketch_gateway.control.config import ModelConfig
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.batcher import BatchingPredictor
from ketch_gateway.serving.caching import CachingPredictor, approximate_index
from ketch_gateway.serving.direct import DirectPredictor
from ketch_gateway.serving.predictor import Dispatcher, Predictor
from ketch_gateway.serving.replicas import ReplicaSet

__all__ = ["build_chain", "build_dispatcher"]

_log = logging.getLogger(__name__)


def build_dispatcher(
    model: ModelConfig, version: str, replicas: ReplicaSet, metrics: Metrics
) -> Dispatcher:
    """The link that sends a version's rows to its replicas, by the batching policy."""
    if model.batching.policy == "none":
        return DirectPredictor(model.name, replicas, version)
    return BatchingPredictor(model.name, version, replicas, model.batching, metrics)


def build_chain(
    model: ModelConfig,
    version: str,
    dispatcher: Dispatcher,
    metrics: Metrics,
    *,
    signature: Signature | None = None,
    capabilities: Capabilities | None = None,
) -> Predictor:
    """The head of a version's chain, in front of ``dispatcher``.

    ``signature`` and ``capabilities`` are the wrapper's, once known (None before a
    replica has answered, or for a wrapper that does not declare capabilities).
    """
    cache = model.cache
    if not cache.enabled:
        return dispatcher
    if capabilities is not None and capabilities.observe and cache.ttl_s is None:
        _log.warning(
            "model %r version %r learns online: its answers are not cached (set "
            "[models.cache] ttl_s to cache them for a while)",
            model.name,
            version,
        )
        return dispatcher
    approximate = approximate_index(cache, signature) if signature is not None else None
    return CachingPredictor(
        model.name, version, dispatcher, cache, metrics, approximate=approximate
    )
