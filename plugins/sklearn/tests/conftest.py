from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_digits
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn_test_data import make_sentences


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits split into training (first 1,000) and test rows, as float64."""
    rows, labels = load_digits(return_X_y=True)
    return rows[:1000], labels[:1000], rows[1000:], labels[1000:]


@pytest.fixture(scope="session")
def digits_classifier(
    digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> LogisticRegression:
    train_rows, train_labels, _, _ = digits
    return LogisticRegression(max_iter=2000).fit(train_rows / 16.0, train_labels)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sklearn-models")


@pytest.fixture(scope="session")
def digits_skops(models_dir: Path, digits_classifier: LogisticRegression) -> Path:
    path = models_dir / "digits.skops"
    skops.io.dump(digits_classifier, path)
    return path


@pytest.fixture(scope="session")
def text_classifier() -> object:
    sentences, topics = make_sentences(300, seed=0)
    return make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)).fit(
        sentences, topics
    )


@pytest.fixture(scope="session")
def text_skops(models_dir: Path, text_classifier: object) -> Path:
    path = models_dir / "topics.skops"
    skops.io.dump(text_classifier, path)
    return path
