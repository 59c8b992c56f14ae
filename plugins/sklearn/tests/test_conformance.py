"""The conformance suite, run on the scikit-learn plugin for a numeric and a text model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn_test_data import make_sentences

from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc

__all__ = ["TestInProcess", "TestOverGrpc"]


@pytest.fixture(scope="module", params=["digits", "text"])
def ketch_target(
    request: pytest.FixtureRequest,
    digits_skops: Path,
    text_skops: Path,
    digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> ConformanceTarget:
    if request.param == "digits":
        test_rows = digits[2][:16] / 16.0
        return ConformanceTarget(
            "sklearn",
            digits_skops,
            options={"method": "predict,predict_proba,decision_function"},
            sample_inputs={"input": test_rows},
        )
    sentences, _ = make_sentences(12, seed=1)
    rows = np.empty(len(sentences), dtype=object)
    rows[:] = [sentence.encode() for sentence in sentences]
    return ConformanceTarget(
        "sklearn",
        text_skops,
        options={"method": "predict,predict_proba"},
        sample_inputs={"input": rows},
    )
