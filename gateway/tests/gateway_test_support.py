"""Helpers for the gateway's tests: models to serve and configurations to serve them with."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from in_process import LocalModels
from prometheus_client.parser import text_string_to_metric_families

from ketch_gateway import app_table, config_text, model_table, version_table, write_config

SDK_TESTS = Path(__file__).resolve().parents[2] / "sdk" / "tests"
SLOW_PLUGIN = "sdk_test_plugins:slow"
ADMIN_TOKEN = "test-admin-token"
TOPICS = {
    "sports": ["match", "goal", "team", "score", "coach"],
    "weather": ["rain", "sunny", "storm", "cloud", "wind"],
}


def sentences(count: int, seed: int) -> tuple[list[str], list[str]]:
    """Generated sentences about two topics, and their topics."""
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    texts, topics = [], []
    for _ in range(count):
        topic = names[int(rng.integers(len(names)))]
        texts.append(" ".join(rng.choice(TOPICS[topic], size=4)))
        topics.append(topic)
    return texts, topics


AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def digits_config(
    folder: Path, model: Path, count: int = 1, batching: Mapping[str, Any] | None = None
) -> Path:
    """A gateway with an admin token, the digits model (``count`` managed wrappers) and an app.

    The admin API may launch wrappers from the model's folder.
    """
    digits = version_table("sklearn", model, count=count)
    text = config_text(
        gateway={"admin_token": ADMIN_TOKEN},
        admin={"model_roots": [str(model.parent)]},
        models=[model_table("digits", digits, batching=batching)],
        apps=[app_table("digits", ["digits"], 5000)],
    )
    return write_config(folder, text)


def gateway_env() -> dict[str, str]:
    """Environment for a gateway whose wrappers may use the SDK's test plugins."""
    return {"PYTHONPATH": str(SDK_TESTS)}


def metric(gateway: str | httpx.Client, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``, from the gateway.

    ``gateway`` is its URL, or a client of it.
    """
    exposition = (
        httpx.get(f"{gateway}/metrics") if isinstance(gateway, str) else gateway.get("/metrics")
    )
    total = 0.0
    for family in text_string_to_metric_families(exposition.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A real Redis server on a Unix socket in ``folder``; its URL.

    Skips the test when ``redis-server`` is not installed, unless KETCH_REQUIRE_REDIS is
    set (CI sets it after installing Redis), where that is a failure.
    """
    import pytest

    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("KETCH_REQUIRE_REDIS"):
            raise RuntimeError("redis-server is not installed, and KETCH_REQUIRE_REDIS is set")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    socket = folder / "redis.sock"
    process = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)
        yield f"unix://{socket}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def serve_ensemble(
    models: LocalModels, paths: dict[str, Path], slow: dict[str, float] | None = None
) -> str:
    """``[[models]]`` tables for the ensemble, served in process (``slow``: delays by name)."""
    text = ""
    for name, path in paths.items():
        address = models.serve(
            name,
            "sklearn",
            path,
            options={"method": "predict_proba"},
            predict_delay=(slow or {}).get(name),
        )
        text += f"""
[[models]]
name = "{name}"
  [[models.versions]]
  version = "1"
  addresses = ["{address}"]
"""
    return text


def app_toml(name: str, policy: str, extra: str = "") -> str:
    """An ``[[apps]]`` table over the ensemble, with ``policy``."""
    return f"""
[[apps]]
name = "{name}"
models = ["good", "weak", "wrong"]
latency_objective_ms = 5000
policy = "{policy}"
classes = 10
default_output = -1
{extra}
"""
