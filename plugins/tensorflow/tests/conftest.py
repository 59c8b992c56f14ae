from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits scaled to [0, 1] as float32, split into training (first 1,000) and test rows."""
    rows, labels = load_digits(return_X_y=True)
    rows = (rows / 16.0).astype(np.float32)
    return rows[:1000], labels[:1000], rows[1000:], labels[1000:]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tensorflow-models")


@pytest.fixture(scope="session")
def digits_mlp(digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> Any:
    from tensorflow_test_models import train_digits_mlp

    train_rows, train_labels, _, _ = digits
    return train_digits_mlp(train_rows, train_labels)


@pytest.fixture(scope="session")
def digits_keras(models_dir: Path, digits_mlp: Any) -> Path:
    path = models_dir / "digits.keras"
    digits_mlp.save(path)
    return path


@pytest.fixture(scope="session")
def topics_savedmodel(models_dir: Path) -> Path:
    from tensorflow_test_models import make_sentences, save_topic_classifier

    sentences, topics = make_sentences(300, seed=0)
    return save_topic_classifier(models_dir, sentences, topics)


@pytest.fixture(scope="session")
def order_savedmodel(models_dir: Path) -> Path:
    from tensorflow_test_models import save_order_function

    return save_order_function(models_dir)
