"""The gateway supervises the wrappers it starts: restarts the dead, leaves no orphans."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_test_support import AUTH, alive, digits_config

from ketch_gateway import (
    GatewayProcess,
    config_text,
    model_table,
    start_gateway,
    version_table,
    write_config,
)


@pytest.fixture
def supervised_config(tmp_path: Path, digits_model: Path) -> Path:
    return digits_config(tmp_path, digits_model, count=2)


@pytest.fixture
def supervised(supervised_config: Path) -> Iterator[GatewayProcess]:
    with start_gateway(supervised_config) as process:
        yield process


def wrappers(url: str) -> list[dict[str, Any]]:
    models = httpx.get(f"{url}/admin/models", headers=AUTH, timeout=30).json()["models"]
    found: list[dict[str, Any]] = models[0]["versions"][0]["wrappers"]
    return found


def wait_until(condition: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def test_a_wrapper_that_dies_is_restarted(supervised: GatewayProcess, digits: Any) -> None:
    before = wrappers(supervised.url)
    victim = before[0]["pid"]
    os.kill(victim, signal.SIGKILL)

    def restarted() -> bool:
        now = wrappers(supervised.url)[0]
        return now["restarts"] == 1 and now["pid"] not in (None, victim)

    assert wait_until(restarted), wrappers(supervised.url)
    log = "".join(supervised.stderr_tail)
    assert "exited with status -9; restarting in" in log
    for _ in range(6):
        answer = httpx.post(
            f"{supervised.url}/apps/digits/predict",
            json={"input": digits[0][0].tolist()},
            timeout=30,
        )
        assert answer.status_code == 200
        assert answer.json()["default"] is False


def test_sigterm_stops_every_wrapper(supervised: GatewayProcess) -> None:
    pids = [w["pid"] for w in wrappers(supervised.url)]
    assert all(alive(pid) for pid in pids)
    supervised.terminate()
    assert supervised.process.wait(timeout=60) == 0
    assert wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10)


def test_sigkill_leaves_no_orphans(supervised: GatewayProcess) -> None:
    pids = [w["pid"] for w in wrappers(supervised.url)]
    supervised.process.kill()
    supervised.process.wait(timeout=30)
    assert wait_until(lambda: not any(alive(pid) for pid in pids), timeout=20)


def test_a_wrapper_that_cannot_start_stops_the_gateway(tmp_path: Path) -> None:
    broken = tmp_path / "broken.skops"
    broken.write_bytes(b"not a skops file")
    broken_model = model_table("broken", version_table("sklearn", broken))
    config = write_config(tmp_path, config_text(models=[broken_model]))
    from ketch import WrapperStartError

    with pytest.raises(
        WrapperStartError, match=r"(?s)is not a readable skops file.*cannot start: broken v1 #0"
    ):
        start_gateway(config, echo_stderr=False)
