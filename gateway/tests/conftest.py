from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io
from gateway_test_support import ADMIN_TOKEN, SLOW_PLUGIN, gateway_env, sentences
from in_process import LocalModels, gateway_client
from sklearn.datasets import load_digits
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from ketch_conformance.reference import fit_softmax, save_softmax
from ketch_gateway import (
    GatewayProcess,
    app_table,
    config_text,
    model_table,
    start_gateway,
    version_table,
    write_config,
)
from ketch_gateway.control.config_writer import Table


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


SERVING_APPS = [
    app_table("digits", ["digits"], 5000, default_output=-1),
    app_table("topics", ["topics"], 5000),
    app_table("slow-with-default", ["slow"], 150, default_output="too slow"),
    app_table("slow-without-default", ["slow"], 150),
]


def serving_toml(digits: Table, topics: Table, slow: Table) -> str:
    """The read-mostly gateway: digits, topics and a slow model, from their version tables."""
    return config_text(
        gateway={"admin_token": ADMIN_TOKEN, "max_body_bytes": 200000},
        models=[
            model_table("digits", digits),
            model_table("topics", topics),
            model_table("slow", slow, timeout_ms=300),
        ],
        apps=SERVING_APPS,
    )


@pytest.fixture(scope="session")
def serving_config(
    tmp_path_factory: pytest.TempPathFactory,
    digits_model: Path,
    topics_model: Path,
    softmax_model: Path,
) -> Path:
    return write_config(
        tmp_path_factory.mktemp("serving"),
        serving_toml(
            version_table("sklearn", digits_model, options={"method": "predict,predict_proba"}),
            version_table("sklearn", topics_model),
            version_table(SLOW_PLUGIN, softmax_model, options={"predict_delay": "0.6"}),
        ),
    )


@pytest.fixture(scope="session")
def serving(serving_config: Path) -> Iterator[GatewayProcess]:
    """One gateway process for the end-to-end tests: digits, topics and a slow model."""
    with start_gateway(serving_config, env=gateway_env()) as process:
        yield process


@pytest.fixture(scope="session")
def local_models() -> Iterator[LocalModels]:
    """Models served in the test process, for gateways in process."""
    models = LocalModels()
    yield models
    models.close()


@pytest.fixture(scope="session")
def local_serving(
    tmp_path_factory: pytest.TempPathFactory,
    local_models: LocalModels,
    digits_model: Path,
    topics_model: Path,
    softmax_model: Path,
) -> Iterator[httpx.Client]:
    """The read-mostly gateway in process, over the same models served in process."""
    digits = local_models.serve(
        "digits", "sklearn", digits_model, options={"method": "predict,predict_proba"}
    )
    topics = local_models.serve("topics", "sklearn", topics_model)
    slow = local_models.serve("slow", SLOW_PLUGIN, softmax_model, options={"predict_delay": "0.6"})
    text = serving_toml(*(version_table(addresses=[a]) for a in (digits, topics, slow)))
    with gateway_client(text, tmp_path_factory.mktemp("local-serving"), local_models) as client:
        yield client


@pytest.fixture
def http(local_serving: httpx.Client) -> httpx.Client:
    """A client of the read-mostly gateway (in process)."""
    return local_serving


@pytest.fixture(scope="session")
def ensemble_models(
    tmp_path_factory: pytest.TempPathFactory, digits: tuple[np.ndarray, np.ndarray]
) -> dict[str, Path]:
    """A good model, a weak one (60 rows) and a wrong one (every label shifted by one)."""
    rows, labels = digits
    folder = tmp_path_factory.mktemp("ensemble")
    fits = {
        "good": LogisticRegression(max_iter=2000).fit(rows[:1000], labels[:1000]),
        "weak": LogisticRegression(max_iter=2000).fit(rows[:60], labels[:60]),
        "wrong": LogisticRegression(max_iter=2000).fit(rows[:1000], (labels[:1000] + 1) % 10),
    }
    paths = {}
    for name, model in fits.items():
        paths[name] = folder / f"{name}.skops"
        skops.io.dump(model, paths[name])
    return paths
