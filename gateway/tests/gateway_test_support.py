"""Helpers for the gateway's tests: models to serve and configurations to serve them with."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket as stdlib_socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
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


def alive(pid: int) -> bool:
    """Whether the process ``pid`` exists (a zombie counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _accepts(path: Path) -> bool:
    """Whether a server accepts connections on the Unix socket at ``path``."""
    with stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class RedisServer:
    """A real Redis server on a Unix socket in ``folder``, that a test can freeze or stop.

    Skips the test when ``redis-server`` is not installed, unless KETCH_REQUIRE_REDIS is
    set (CI sets it after installing Redis), where that is a failure. With
    ``appendonly`` what Redis acknowledged survives :meth:`kill` and :meth:`start`.
    """

    def __init__(self, folder: Path, *, appendonly: bool = False) -> None:
        import pytest

        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("KETCH_REQUIRE_REDIS"):
                raise RuntimeError("redis-server is not installed, and KETCH_REQUIRE_REDIS is set")
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where the server listens."""
        return f"unix://{self.socket}"

    def start(self) -> None:
        """Start the server (again) and return once it listens."""
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary, "--port", "0", "--unixsocket", str(self.socket),
                "--save", "", "--dir", str(self.folder),
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not _accepts(self.socket):  # the file appears before redis-server listens
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a frozen server go on (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Kill the server outright (SIGKILL)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server (resumed first, if frozen)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def redis_server(folder: Path, *, appendonly: bool = False) -> Iterator[str]:
    """A real Redis server on a Unix socket in ``folder``; its URL (see RedisServer)."""
    with running_redis(folder, appendonly=appendonly) as server:
        yield server.url


@contextlib.contextmanager
def running_redis(folder: Path, *, appendonly: bool = False) -> Iterator[RedisServer]:
    """A started RedisServer, stopped at the end."""
    server = RedisServer(folder, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()


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


def wait_until(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Call ``check()`` until it is true; AssertionError (naming it) past ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(0.05)


def two_versions_toml(address: str, state: str, extra: str = "") -> str:
    """A gateway on the store ``state`` with digits versions 1 and 2 (both at ``address``),
    an app ``digits`` over it, and the ``extra`` tables."""
    return f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"
state = "{state}"

[[models]]
name = "digits"
  [[models.versions]]
  version = "1"
  addresses = ["{address}"]
  [[models.versions]]
  version = "2"
  addresses = ["{address}"]

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 5000
{extra}"""


def digits_at(address: str, *, gateway: str = "", apps: str | None = None) -> str:
    """A configuration: ``[gateway]`` settings, the digits model at ``address``, and apps.

    Without ``apps``, one app called ``digits`` over the model.
    """
    if apps is None:
        apps = '[[apps]]\nname = "digits"\nmodels = ["digits"]\nlatency_objective_ms = 5000\n'
    return f"""
[gateway]
{gateway}

[[models]]
name = "digits"
  [[models.versions]]
  version = "1"
  addresses = ["{address}"]

{apps}"""
