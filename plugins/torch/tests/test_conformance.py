"""The conformance suite, run on the PyTorch plugin for each format it serves.

``pytest plugins/torch/tests --ketch-device cuda`` runs it on a GPU; without one,
a CUDA target is skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc

__all__ = ["TestInProcess", "TestOverGrpc"]


@pytest.fixture(scope="module", params=["torchscript", "export", "onnx"])
def ketch_target(
    request: pytest.FixtureRequest,
    classifier_paths: dict[str, Path],
    digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> ConformanceTarget:
    device = str(request.config.getoption("ketch_device"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"--ketch-device {device} needs a CUDA device, and PyTorch sees none here")
    return ConformanceTarget(
        "torch",
        classifier_paths[request.param],
        device=device,
        sample_inputs={"pixels": digits[2][:16]},
    )
