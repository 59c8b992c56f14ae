from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io
from gateway_test_support import ADMIN_TOKEN, gateway_env, sentences, write_config
from sklearn.datasets import load_digits
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from ketch_conformance.reference import fit_softmax, save_softmax
from ketch_gateway import GatewayProcess, start_gateway


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    rows, labels = load_digits(return_X_y=True)
    return rows / 16.0, labels


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-models")


@pytest.fixture(scope="session")
def digits_classifier(digits: tuple[np.ndarray, np.ndarray]) -> Any:
    rows, labels = digits
    return LogisticRegression(max_iter=2000).fit(rows[:1000], labels[:1000])


@pytest.fixture(scope="session")
def digits_model(models_dir: Path, digits_classifier: Any) -> Path:
    path = models_dir / "digits.skops"
    skops.io.dump(digits_classifier, path)
    return path


@pytest.fixture(scope="session")
def topics_classifier() -> Any:
    texts, topics = sentences(200, seed=0)
    return make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500)).fit(texts, topics)


@pytest.fixture(scope="session")
def topics_model(models_dir: Path, topics_classifier: Any) -> Path:
    path = models_dir / "topics.skops"
    skops.io.dump(topics_classifier, path)
    return path


@pytest.fixture(scope="session")
def softmax_model(models_dir: Path, digits: tuple[np.ndarray, np.ndarray]) -> Path:
    rows, labels = digits
    model = fit_softmax(
        rows[:500].astype(np.float32), labels[:500], 10, epochs=30, learning_rate=0.5
    )
    return save_softmax(model, models_dir / "softmax.npz")


@pytest.fixture(scope="session")
def serving_config(
    tmp_path_factory: pytest.TempPathFactory,
    digits_model: Path,
    topics_model: Path,
    softmax_model: Path,
) -> Path:
    folder = tmp_path_factory.mktemp("serving")
    return write_config(
        folder,
        f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"
max_body_bytes = 200000

[[models]]
name = "digits"
  [[models.versions]]
  version = "1"
  plugin = "sklearn"
  path = "{digits_model}"
  options = {{ method = "predict,predict_proba" }}

[[models]]
name = "topics"
  [[models.versions]]
  version = "1"
  plugin = "sklearn"
  path = "{topics_model}"

[[models]]
name = "slow"
timeout_ms = 300
  [[models.versions]]
  version = "1"
  plugin = "sdk_test_plugins:slow"
  path = "{softmax_model}"
  options = {{ predict_delay = "0.6" }}

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 5000
default_output = -1

[[apps]]
name = "topics"
models = ["topics"]
latency_objective_ms = 5000

[[apps]]
name = "slow-with-default"
models = ["slow"]
latency_objective_ms = 150
default_output = "too slow"

[[apps]]
name = "slow-without-default"
models = ["slow"]
latency_objective_ms = 150
""",
    )


@pytest.fixture(scope="session")
def serving(serving_config: Path) -> Iterator[GatewayProcess]:
    """One gateway for the read-mostly tests: digits, topics and a slow model."""
    with start_gateway(serving_config, env=gateway_env()) as process:
        yield process


@pytest.fixture
def http(serving: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=serving.url, timeout=30) as client:
        yield client
