from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: 64 pixels a row, and the labels."""
    rows, labels = load_digits(return_X_y=True)
    return rows.astype(np.float64), labels


@pytest.fixture(scope="session")
def digits_classifier(digits: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    """A classifier trained on the first 1,000 digits."""
    rows, labels = digits
    return LogisticRegression(max_iter=2000).fit(rows[:1000], labels[:1000])


@pytest.fixture(scope="session")
def model_volume(tmp_path_factory: pytest.TempPathFactory, digits_classifier: object) -> Path:
    """The models volume as the manifests lay it out: digits/1/ holds one skops file."""
    volume = tmp_path_factory.mktemp("models")
    folder = volume / "digits" / "1"
    folder.mkdir(parents=True)
    skops.io.dump(digits_classifier, folder / "digits.skops")
    (folder / "README.txt").write_text("LogisticRegression on the first 1,000 digits\n")
    return volume
