"""Placement: the devices there are, clear errors for those there are not, dtypes and threads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch_test_models import DigitsClassifier, save_export

from ketch import DeviceUnavailableError, Framework, ModelRuntime, ModelSpec, select_framework
from ketch_torch import TorchModel
from ketch_torch.devices import available_devices

Digits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
NEEDS_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device, and PyTorch sees none here"
)
NEEDS_MPS = pytest.mark.skipif(
    not torch.backends.mps.is_available(), reason="needs an Apple GPU (MPS), and there is none here"
)


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("torch")


def load(framework: Framework, path: Path, device: str = "cpu", **options: str) -> ModelRuntime:
    return ModelRuntime.load(framework, ModelSpec.from_path(path, device=device, options=options))


def assert_answers_like(
    runtime: ModelRuntime, classifier: DigitsClassifier, rows: np.ndarray
) -> None:
    """The runtime's answers are the classifier's, within the tolerance it declares."""
    outputs = runtime.predict({"pixels": rows})
    with torch.inference_mode():
        expected = {name: t.numpy() for name, t in classifier(torch.from_numpy(rows)).items()}
    tolerance = runtime.signature.capabilities.tolerance
    assert outputs["probabilities"].dtype == np.float32
    np.testing.assert_allclose(
        outputs["probabilities"],
        expected["probabilities"],
        rtol=tolerance.rtol,
        atol=tolerance.atol,
    )
    assert (outputs["label"] == expected["label"]).mean() > 0.95


def test_the_devices_this_machine_has() -> None:
    devices = available_devices()
    assert devices[0] == "cpu"
    assert [d for d in devices if d.startswith("cuda")] == [
        f"cuda:{index}" for index in range(torch.cuda.device_count())
    ]
    assert ("mps" in devices) == torch.backends.mps.is_available()


def test_the_signature_lists_them(framework: Framework, classifier_paths: dict[str, Path]) -> None:
    runtime = load(framework, classifier_paths["export"])
    assert runtime.signature.capabilities.devices == available_devices()


@pytest.mark.parametrize("device", ["cuda:99", "no-such-device", "tpu", "cuda:x"])
def test_a_device_that_is_not_there_is_named_with_those_that_are(
    framework: Framework, classifier_paths: dict[str, Path], device: str
) -> None:
    model = framework.load(ModelSpec.from_path(classifier_paths["export"]))
    listed = ", ".join(available_devices())
    with pytest.raises(
        DeviceUnavailableError, match=rf"'{device}' is not available: .*\(available: {listed}\)"
    ):
        framework.place(model, device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu(framework: Framework, classifier_paths: dict[str, Path]) -> None:
    with pytest.raises(
        DeviceUnavailableError,
        match=r"'cuda' is not available: PyTorch sees no CUDA device here \(available: cpu",
    ):
        load(framework, classifier_paths["export"], device="cuda")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_without_an_apple_gpu(framework: Framework, classifier_paths: dict[str, Path]) -> None:
    with pytest.raises(DeviceUnavailableError, match="'mps' is not available: PyTorch sees no MPS"):
        load(framework, classifier_paths["export"], device="mps")


def test_placing_leaves_the_loaded_model_as_it_was(
    framework: Framework, classifier_paths: dict[str, Path], digits: Digits
) -> None:
    model = framework.load(
        ModelSpec.from_path(classifier_paths["torchscript"], options={"dtype": "bfloat16"})
    )
    placed = framework.place(model, "cpu")
    assert isinstance(model, TorchModel)
    assert isinstance(placed, TorchModel)
    assert framework.place(placed, "cpu") is placed
    assert next(placed.module.parameters()).dtype == torch.bfloat16
    assert next(model.module.parameters()).dtype == torch.float32


@pytest.mark.parametrize(
    ("file_format", "dtype"),
    [
        *((f, d) for f in ("torchscript", "export") for d in ("float32", "float16", "bfloat16")),
        ("onnx", "float32"),
        ("onnx", "float16"),
    ],
)
def test_compute_dtypes_on_the_cpu(
    framework: Framework,
    *,
    classifier_paths: dict[str, Path],
    classifier: DigitsClassifier,
    digits: Digits,
    file_format: str,
    dtype: str,
) -> None:
    runtime = load(framework, classifier_paths[file_format], dtype=dtype)
    assert [s.datatype for s in runtime.signature.outputs] == ["FP32", "INT64"]
    assert_answers_like(runtime, classifier, digits[2][:64])


def test_half_precision_names_the_operator_the_cpu_lacks(
    framework: Framework, tmp_path: Path
) -> None:
    pooling = nn.Sequential(nn.Unflatten(1, (1, 2, 2, 2)), nn.AvgPool3d(2), nn.Flatten()).eval()
    path = save_export(pooling, [torch.rand(3, 8)], tmp_path / "pool3d.pt2")
    with pytest.raises(
        DeviceUnavailableError,
        match=r"'cpu' is not available: the model does not run on cpu in float16: .*avg_pool3d",
    ):
        load(framework, path, dtype="float16")
    outputs = load(framework, path, dtype="float32").predict({"input": np.ones((2, 8), np.float32)})
    np.testing.assert_allclose(outputs["output"], np.ones((2, 1)))


@pytest.fixture
def restore_threads() -> Iterator[int]:
    previous = torch.get_num_threads()
    yield previous
    torch.set_num_threads(previous)


def test_the_threads_option(
    framework: Framework, classifier_paths: dict[str, Path], restore_threads: int
) -> None:
    load(framework, classifier_paths["export"], threads="1")
    assert torch.get_num_threads() == 1


@NEEDS_CUDA
@pytest.mark.parametrize("file_format", ["torchscript", "export"])
@pytest.mark.parametrize("dtype", ["auto", "float16"])
def test_cuda_placement(
    framework: Framework,
    *,
    classifier_paths: dict[str, Path],
    classifier: DigitsClassifier,
    digits: Digits,
    file_format: str,
    dtype: str,
) -> None:
    runtime = load(framework, classifier_paths[file_format], device="cuda", dtype=dtype)
    assert isinstance(runtime.model, TorchModel)
    module = runtime.model.module
    assert {t.device.type for t in [*module.parameters(), *module.buffers()]} == {"cuda"}
    assert_answers_like(runtime, classifier, digits[2][:64])


@NEEDS_MPS
def test_mps_placement(
    framework: Framework, classifier_paths: dict[str, Path], digits: Digits
) -> None:
    runtime = load(framework, classifier_paths["export"], device="mps")
    assert runtime.predict({"pixels": digits[2][:8]})["label"].shape == (8,)
