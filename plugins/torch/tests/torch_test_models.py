"""Tiny PyTorch models for the plugin's tests, and how to save them in each format.

The modules live in a file (not in a test) because TorchScript compiles from source.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

__all__ = [
    "DigitsClassifier",
    "ImageScorer",
    "MaskedScorer",
    "SequencePair",
    "save_export",
    "save_export_with_dims",
    "save_metadata",
    "save_onnx",
    "save_torchscript",
    "train_digits_classifier",
]


class DigitsClassifier(nn.Module):
    """A multilayer perceptron over 8x8 digits: class probabilities and the label."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, hidden)
        self.out = nn.Linear(hidden, 10)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores."""
        scores: torch.Tensor = self.out(torch.relu(self.hidden(pixels)))
        return scores

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Probabilities and the most probable digit, per row."""
        logits = self.logits(pixels)
        return {"probabilities": torch.softmax(logits, dim=1), "label": logits.argmax(dim=1)}


class MaskedScorer(nn.Module):
    """Two named inputs of two datatypes: pixels, and a mask of the pixels that count."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(64, 3)

    def forward(
        self, pixels: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Three scores per row, and how many pixels the mask kept."""
        kept = pixels * mask.to(pixels.dtype)
        return self.score(kept), mask.sum(dim=1)


class ImageScorer(nn.Module):
    """A small CNN over RGB images of any size: a convolution, global pooling, two scores."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.score = nn.Linear(4, 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Two scores per image."""
        pooled = torch.relu(self.conv(image)).mean(dim=(2, 3))
        scores: torch.Tensor = self.score(pooled)
        return scores


class SequencePair(nn.Module):
    """Two sequences of one length, and a third of twice that length (every other step)."""

    def forward(
        self, first: torch.Tensor, second: torch.Tensor, doubled: torch.Tensor
    ) -> torch.Tensor:
        """A weighted sum per row."""
        return (first * second).sum(dim=1) + doubled[:, ::2].sum(dim=1)


def train_digits_classifier(
    rows: np.ndarray, labels: np.ndarray, hidden: int = 32, steps: int = 150, seed: int = 0
) -> DigitsClassifier:
    """A classifier trained by full-batch Adam, in evaluation mode."""
    torch.manual_seed(seed)
    model = DigitsClassifier(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs, targets = torch.from_numpy(rows), torch.from_numpy(labels)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model.logits(inputs), targets).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return model.eval()


def save_torchscript(module: nn.Module, path: Path) -> Path:
    """``torch.jit.script`` and ``torch.jit.save`` (both deprecated in PyTorch 2.13)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), str(path))
    return path


def save_export(
    module: nn.Module, examples: Sequence[torch.Tensor], path: Path, dynamic_batch: bool = True
) -> Path:
    """``torch.export`` with a dynamic batch dimension (or the examples' fixed one)."""
    dynamic: Any = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic = tuple({0: batch} for _ in examples)
    exported = torch.export.export(module, tuple(examples), dynamic_shapes=dynamic)
    torch.export.save(exported, str(path))
    return path


def save_export_with_dims(
    module: nn.Module, examples: Sequence[torch.Tensor], path: Path, dynamic_shapes: Any
) -> Path:
    """``torch.export`` with the given ``dynamic_shapes`` (``Dim`` ranges and relations)."""
    exported = torch.export.export(module.eval(), tuple(examples), dynamic_shapes=dynamic_shapes)
    torch.export.save(exported, str(path))
    return path


def save_onnx(
    module: nn.Module,
    examples: Sequence[torch.Tensor],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
) -> Path:
    """``torch.onnx.export`` through TorchScript: the exporter that needs no onnxscript."""
    axes = {name: {0: "batch"} for name in [*input_names, *output_names]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            tuple(examples),
            str(path),
            dynamo=False,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=axes,
        )
    return path


def save_metadata(model_path: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` as the metadata file beside ``model_path``."""
    path = model_path.with_name(model_path.name + ".ketch.json")
    path.write_text(json.dumps(document), encoding="utf-8")
    return path
