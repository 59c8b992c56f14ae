"""Devices: the CPU, CUDA through onnxruntime's CUDA provider, and clear errors for the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx_zoo import ARCHITECTURES, reference

from ketch import DeviceUnavailableError, Framework, ModelRuntime, ModelSpec, select_framework
from ketch_onnx import OnnxModel
from ketch_onnx.devices import CUDA_PROVIDER, available_devices

HAS_CUDA = CUDA_PROVIDER in ort.get_available_providers()
PROVIDERS = ", ".join(ort.get_available_providers())


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("onnx")


@pytest.fixture(scope="module")
def mlp_onnx(zoo: dict[tuple[str, str], Path]) -> Path:
    return zoo[("mlp", "torchscript")]


def test_the_devices_onnxruntime_has() -> None:
    devices = available_devices(ort)
    assert devices[0] == "cpu"
    assert any(d.startswith("cuda:") for d in devices) == HAS_CUDA


def test_the_signature_lists_them(framework: Framework, mlp_onnx: Path) -> None:
    runtime = ModelRuntime.load(framework, ModelSpec.from_path(mlp_onnx))
    assert runtime.signature.capabilities.devices == available_devices(ort)


@pytest.mark.parametrize("device", ["no-such-device", "mps", "tpu:0", "cuda:x"])
def test_a_device_onnx_graphs_do_not_run_on(
    framework: Framework, mlp_onnx: Path, device: str
) -> None:
    model = framework.load(ModelSpec.from_path(mlp_onnx))
    with pytest.raises(
        DeviceUnavailableError,
        match=rf"'{device}' is not available: ONNX graphs run on cpu, cuda or cuda:N "
        rf"\(onnxruntime's execution providers here: {PROVIDERS}\)",
    ):
        framework.place(model, device)


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime has its CUDA provider here")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_the_cuda_provider_names_the_providers_there_are(
    framework: Framework, mlp_onnx: Path, device: str
) -> None:
    with pytest.raises(
        DeviceUnavailableError,
        match=rf"'{device}' is not available: onnxruntime has no CUDAExecutionProvider here, "
        rf"only {PROVIDERS}; install onnxruntime-gpu .*\(available: cpu\)",
    ):
        ModelRuntime.load(framework, ModelSpec.from_path(mlp_onnx, device=device))


@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and an NVIDIA GPU")
def test_cuda_placement(framework: Framework, mlp_onnx: Path) -> None:
    runtime = ModelRuntime.load(framework, ModelSpec.from_path(mlp_onnx, device="cuda"))
    assert isinstance(runtime.model, OnnxModel)
    assert runtime.model.device == "cuda:0"
    assert runtime.model.session.get_providers()[0] == CUDA_PROVIDER
    rows = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    (expected,) = reference(ARCHITECTURES["mlp"].module(), {"pixels": rows})
    tolerance = runtime.signature.capabilities.tolerance
    np.testing.assert_allclose(
        runtime.predict({"pixels": rows})["probabilities"],
        expected,
        rtol=tolerance.rtol,
        atol=tolerance.atol,
    )


def test_placing_on_the_cpu_keeps_the_loaded_session(framework: Framework, mlp_onnx: Path) -> None:
    model = framework.load(ModelSpec.from_path(mlp_onnx))
    placed = framework.place(model, "cpu")
    assert isinstance(model, OnnxModel)
    assert isinstance(placed, OnnxModel)
    assert placed.session is model.session
    assert placed.placed
    assert not model.placed
