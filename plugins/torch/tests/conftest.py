from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch_test_models import (
    DigitsClassifier,
    MaskedScorer,
    save_export,
    save_metadata,
    save_onnx,
    save_torchscript,
    train_digits_classifier,
)

DIGITS_METADATA = {
    "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
    "outputs": [{"name": "probabilities"}, {"name": "label"}],
}


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits scaled to [0, 1] as float32: training (first 1,000) and test rows and labels."""
    rows, labels = load_digits(return_X_y=True)
    rows = (rows / 16.0).astype(np.float32)
    labels = labels.astype(np.int64)
    return rows[:1000], labels[:1000], rows[1000:], labels[1000:]


@pytest.fixture(scope="session")
def classifier(digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> DigitsClassifier:
    train_rows, train_labels, _, _ = digits
    return train_digits_classifier(train_rows, train_labels)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("torch-models")


@pytest.fixture(scope="session")
def example_pixels(digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(digits[0][:4])


@pytest.fixture(scope="session")
def classifier_paths(
    models_dir: Path, classifier: DigitsClassifier, example_pixels: torch.Tensor
) -> dict[str, Path]:
    """The digits classifier in each format; the TorchScript one with its metadata file."""
    torchscript = save_torchscript(classifier, models_dir / "digits.pt")
    save_metadata(torchscript, DIGITS_METADATA)
    return {
        "torchscript": torchscript,
        "export": save_export(classifier, [example_pixels], models_dir / "digits.pt2"),
        "onnx": save_onnx(
            classifier,
            [example_pixels],
            models_dir / "digits.onnx",
            ["pixels"],
            ["probabilities", "label"],
        ),
    }


@pytest.fixture(scope="session")
def masked_scorer() -> MaskedScorer:
    torch.manual_seed(1)
    return MaskedScorer().eval()


@pytest.fixture(scope="session")
def masked_examples(
    digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    rows = digits[2][:6]
    mask = np.random.default_rng(2).random(rows.shape) > 0.3
    return {"pixels": rows, "mask": mask}


@pytest.fixture(scope="session")
def masked_export(
    models_dir: Path, masked_scorer: MaskedScorer, masked_examples: dict[str, np.ndarray]
) -> Path:
    """The two-input model as a ``torch.export`` archive (it records its inputs itself)."""
    examples = [torch.from_numpy(masked_examples[name]) for name in ("pixels", "mask")]
    return save_export(masked_scorer, examples, models_dir / "masked.pt2")
