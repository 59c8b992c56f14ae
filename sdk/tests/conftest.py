from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ketch_conformance.reference import fit_softmax, save_softmax

TESTS_DIR = Path(__file__).parent


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Digit images scaled to [0, 1] as float32, and their labels."""
    rows, labels = load_digits(return_X_y=True)
    return (rows / 16.0).astype(np.float32), labels.astype(np.int64)


@pytest.fixture(scope="session")
def softmax_path(
    tmp_path_factory: pytest.TempPathFactory, digits: tuple[np.ndarray, np.ndarray]
) -> Path:
    """A softmax regression trained on the first 1,000 digits, saved for the reference plugin."""
    rows, labels = digits
    model = fit_softmax(rows[:1000], labels[:1000], n_classes=10, epochs=150, learning_rate=0.5)
    return save_softmax(model, tmp_path_factory.mktemp("softmax") / "digits.npz")


@pytest.fixture(scope="session")
def test_plugins_env() -> dict[str, str]:
    """Environment that lets ``ketch serve`` import the test plugins."""
    return {"PYTHONPATH": str(TESTS_DIR)}
