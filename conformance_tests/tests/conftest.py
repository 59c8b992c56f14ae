from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ketch_conformance.reference import fit_softmax, save_softmax

pytest_plugins = ["pytester"]

TESTS_DIR = Path(__file__).parent


@pytest.fixture(scope="session")
def digit_rows() -> tuple[np.ndarray, np.ndarray]:
    rows, labels = load_digits(return_X_y=True)
    return (rows / 16.0).astype(np.float32), labels.astype(np.int64)


@pytest.fixture(scope="session")
def reference_model(
    tmp_path_factory: pytest.TempPathFactory, digit_rows: tuple[np.ndarray, np.ndarray]
) -> Path:
    rows, labels = digit_rows
    model = fit_softmax(rows[:800], labels[:800], n_classes=10, epochs=100, learning_rate=0.5)
    return save_softmax(model, tmp_path_factory.mktemp("reference") / "digits.npz")


@pytest.fixture(scope="session")
def broken_env() -> dict[str, str]:
    return {"PYTHONPATH": str(TESTS_DIR)}
