"""The plugin on a GPU: placement, aliases, and the whole conformance suite with device gpu.

Every test here needs a GPU that TensorFlow can see, and skips without one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_test_models import conformance_target

from ketch import DeviceUnavailableError, ModelSpec, select_framework
from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc
from ketch_tensorflow import TensorFlowModel

__all__ = ["TestInProcess", "TestOverGrpc"]

NO_GPU = "TensorFlow sees no GPU on this machine (run these on a machine with one)"
# Without a GPU the conformance target is absent: its checks skip, even in strict mode.
pytestmark = pytest.mark.ketch_target_may_skip(NO_GPU)


@pytest.fixture(scope="module")
def gpu_count() -> int:
    count = len(tf.config.list_logical_devices("GPU"))
    if not count:
        pytest.skip(NO_GPU)
    return count


@pytest.fixture(scope="module", params=["keras-mlp", "savedmodel-text"])
def ketch_target(
    request: pytest.FixtureRequest,
    gpu_count: int,
    digits_keras: Path,
    topics_savedmodel: Path,
    digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> ConformanceTarget:
    return conformance_target(request.param, digits_keras, topics_savedmodel, digits[2], "gpu")


@pytest.mark.parametrize("alias", ["gpu", "gpu:0", "cuda", "cuda:0", " GPU:0 "])
def test_gpu_names_place_the_model_on_the_first_gpu(
    gpu_count: int, digits_keras: Path, digits: Any, alias: str
) -> None:
    framework = select_framework("tensorflow")
    on_cpu = framework.load(ModelSpec.from_path(digits_keras))
    placed = framework.place(on_cpu, alias)
    assert isinstance(placed, TensorFlowModel)
    assert placed.device.name == "gpu:0"
    assert placed.signature.capabilities.devices[:2] == ("cpu", "gpu:0")
    model, _ = placed.function.owner
    assert all(variable.value.device.endswith("GPU:0") for variable in model.variables)
    rows = digits[2][:32]
    got = framework.batch_predict(placed, {"pixels": rows})
    expected = framework.batch_predict(on_cpu, {"pixels": rows})
    # TensorFloat-32 matrix products on the GPU keep fewer digits than the CPU
    np.testing.assert_allclose(
        got["probabilities"], expected["probabilities"], rtol=2e-2, atol=2e-3
    )


def test_savedmodel_variables_live_on_the_gpu(gpu_count: int, topics_savedmodel: Path) -> None:
    framework = select_framework("tensorflow")
    placed = framework.place(framework.load(ModelSpec.from_path(topics_savedmodel)), "cuda:0")
    assert isinstance(placed, TensorFlowModel)
    variables = placed.function.owner.signatures["serving_default"].variables
    assert any(variable.device.endswith("GPU:0") for variable in variables)


def test_a_gpu_past_the_last_is_refused(gpu_count: int, digits_keras: Path) -> None:
    framework = select_framework("tensorflow")
    model = framework.load(ModelSpec.from_path(digits_keras))
    with pytest.raises(
        DeviceUnavailableError,
        match=rf"'cuda:{gpu_count}' is not available: .*available: cpu, gpu:0",
    ):
        framework.place(model, f"cuda:{gpu_count}")
