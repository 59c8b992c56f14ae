"""The conformance suite, strict, on every model of the zoo, the string graph, and a graph
exported for one batch size that declares it as ``max_batch``.

Each target runs the whole suite (in process and over gRPC through ``ketch serve
onnx``); the wrappers import onnxruntime only, so a target costs seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_zoo import ARCHITECTURES, WORDS, ZOO

from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc

__all__ = ["TestInProcess", "TestOverGrpc"]

TARGETS = [f"{name}-{exporter}" for name, exporter in ZOO] + ["words", "fixed-batch"]


@pytest.fixture(scope="module", params=TARGETS)
def ketch_target(
    request: pytest.FixtureRequest,
    zoo: dict[tuple[str, str], Path],
    words_onnx: Path,
    fixed_mlp: Path,
) -> ConformanceTarget:
    if request.param == "words":
        words = np.empty(8, dtype=object)
        words[:] = [word.encode() for word in (*WORDS, "Éclair", "kiwi", "")]
        return ConformanceTarget("onnx", words_onnx, sample_inputs={"word": words})
    if request.param == "fixed-batch":
        rows = ARCHITECTURES["mlp"].examples(np.random.default_rng(12), 4)
        options = {"fixed_batch": "max_batch"}
        return ConformanceTarget("onnx", fixed_mlp, options=options, sample_inputs=rows)
    name, exporter = request.param.rsplit("-", 1)
    rows = ARCHITECTURES[name].examples(np.random.default_rng(11), 12)
    return ConformanceTarget("onnx", zoo[(name, exporter)], sample_inputs=rows)
