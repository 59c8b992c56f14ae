"""The conformance suite, run on the TensorFlow plugin for both formats.

A Keras 3 MLP on digits (``.keras``), and a SavedModel text classifier whose
input and one of its outputs are strings (OIP BYTES).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tensorflow_test_models import conformance_target

from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc

__all__ = ["TestInProcess", "TestOverGrpc"]


@pytest.fixture(scope="module", params=["keras-mlp", "savedmodel-text"])
def ketch_target(
    request: pytest.FixtureRequest,
    digits_keras: Path,
    topics_savedmodel: Path,
    digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> ConformanceTarget:
    return conformance_target(request.param, digits_keras, topics_savedmodel, digits[2], "cpu")
