"""The conformance suite, run on the PyTorch plugin for each format it serves.

Besides the digits classifier in each format, two ``torch.export`` programs whose
dimensions are bounded: a CNN for images of 16 to 512 pixels a side, and three
sequences that share a length (2 to 32) or take twice it. The suite's random rows
would not fit them; it predicts the rows the plugin's ``ketch_example_inputs`` gives.

``pytest plugins/torch/tests --ketch-device cuda`` runs it on a GPU; without one,
a CUDA target is skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.export import Dim
from torch_test_models import ImageScorer, SequencePair, save_export_with_dims

from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc

__all__ = ["TestInProcess", "TestOverGrpc"]


@pytest.fixture(scope="session")
def bounded_exports(models_dir: Path) -> dict[str, Path]:
    """``torch.export`` programs whose dimensions take some sizes only."""
    torch.manual_seed(3)
    side = {2: Dim("h", min=16, max=512), 3: Dim("w", min=16, max=512)}
    seq, batch = Dim("seq", min=2, max=32), Dim("batch")
    return {
        "export-images": save_export_with_dims(
            ImageScorer(),
            [torch.randn(2, 3, 32, 24)],
            models_dir / "images.pt2",
            ({0: Dim("batch", max=32), **side},),
        ),
        "export-sequences": save_export_with_dims(
            SequencePair(),
            [torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 16)],
            models_dir / "sequences.pt2",
            ({0: batch, 1: seq}, {0: batch, 1: seq}, {0: batch, 1: 2 * seq}),
        ),
    }


@pytest.fixture(
    scope="module",
    params=["torchscript", "export", "onnx", "export-images", "export-sequences"],
)
def ketch_target(
    request: pytest.FixtureRequest,
    classifier_paths: dict[str, Path],
    bounded_exports: dict[str, Path],
    digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> ConformanceTarget:
    device = str(request.config.getoption("ketch_device"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"--ketch-device {device} needs a CUDA device, and PyTorch sees none here")
    name = str(request.param)
    if name in bounded_exports:
        return ConformanceTarget("torch", bounded_exports[name], device=device)
    return ConformanceTarget(
        "torch",
        classifier_paths[name],
        device=device,
        sample_inputs={"pixels": digits[2][:16]},
    )
