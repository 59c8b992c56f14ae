"""A BentoML service for the pickled model, with a batchable API (adaptive batching).

    bentoml serve bentoml_service:Digits --port PORT     (PEER_MODEL, PEER_MAX_BATCH and
                                                       PEER_WAIT_MS in the environment)

BentoML's batchable API takes ``{"inputs": [[...row...]]}`` on ``POST /predict``; its
dispatcher sizes batches adaptively within ``max_batch_size`` and ``max_latency_ms``.
"""

from __future__ import annotations

import os

import bentoml
import joblib
import numpy as np

MAX_BATCH = int(os.environ.get("PEER_MAX_BATCH", "64"))
MAX_LATENCY_MS = int(float(os.environ.get("PEER_MAX_LATENCY_MS", "1000")))


@bentoml.service(workers=1)
class Digits:
    """The model, one row per request, batched by BentoML."""

    def __init__(self) -> None:
        self.model = joblib.load(os.environ["PEER_MODEL"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """The classes of a batch of rows."""
        return np.asarray(self.model.predict(inputs))
