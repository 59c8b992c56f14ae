"""The conformance suite, run on the vw plugin for each kind of model and input it serves."""

from __future__ import annotations

from pathlib import Path

import pytest
from vw_test_models import TrainedModel

from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc

__all__ = ["TestInProcess", "TestOverGrpc"]


@pytest.fixture(
    scope="module", params=["digits-dense", "regression-text", "binary-text", "bandit-text"]
)
def ketch_target(
    request: pytest.FixtureRequest,
    vw_models: dict[str, TrainedModel],
    tmp_path_factory: pytest.TempPathFactory,
) -> ConformanceTarget:
    name, kind = str(request.param).split("-")
    model = vw_models[name].copy_to(Path(tmp_path_factory.mktemp(f"conformance-{name}")))
    test = model.test.take(slice(0, 12))
    if kind == "dense":
        return ConformanceTarget(
            "vw",
            model.path,
            options={"input": "dense", "n_features": str(test.rows.shape[1])},
            sample_inputs={"input": test.rows},
        )
    options = {"actions": "3"} if name == "bandit" else {}
    return ConformanceTarget("vw", model.path, options=options, sample_inputs={"input": test.texts})
