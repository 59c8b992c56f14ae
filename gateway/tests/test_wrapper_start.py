"""How managed wrappers start: a few at a time, with their own environment, and why they fail.

The children here are real processes running a few lines of Python in place of
``ketch serve`` (its ready line, or its way of failing), so that what is checked is
the supervisor's side: the start gate, the environment and the failure it reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ketch.process import READY_PREFIX
from ketch_gateway.control.auth_throttle import MAX_ADDRESSES, AuthThrottle
from ketch_gateway.control.config import LaunchSpec
from ketch_gateway.control.supervisor import (
    ManagedWrapper,
    RestartPolicy,
    StartGate,
    WrapperStartFailed,
    last_meaningful_line,
)
from ketch_gateway.control.wrapper_env import WrapperSettings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


READY = READY_PREFIX + json.dumps(
    {"address": "127.0.0.1:1", "model": "m", "version": "1", "plugin": "p", "pid": 1}
)


class ScriptedWrapper(ManagedWrapper):
    """A managed wrapper whose child runs ``script`` instead of ``ketch serve``."""

    def __init__(self, script: str, gate: StartGate, timeout: float = 60.0) -> None:
        super().__init__(
            "m v1 #0",
            model="m",
            version="1",
            launch=LaunchSpec(plugin="p", path=Path("/dev/null")),
            on_ready=lambda address: None,
            on_exit=lambda: None,
            policy=RestartPolicy(startup_timeout=timeout),
            gate=gate,
        )
        self.script = script

    def _command(self) -> list[str]:
        return [sys.executable, "-c", self.script]


class CountingGate(StartGate):
    """A start gate that remembers the most children it let start at once."""

    def __init__(self, at_once: int, environment: dict[str, str] | None = None) -> None:
        super().__init__(environment, at_once)
        self.starting = 0
        self.most = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with super().slot():
            self.starting += 1
            self.most = max(self.most, self.starting)
            try:
                yield
            finally:
                self.starting -= 1


async def test_wrappers_start_a_few_at_a_time() -> None:
    gate = CountingGate(at_once=2)
    script = f"import time; time.sleep(0.3); print({READY!r}, flush=True); time.sleep(60)"
    wrappers = [ScriptedWrapper(script, gate) for _ in range(5)]
    try:
        addresses = await asyncio.gather(*(wrapper.start() for wrapper in wrappers))
    finally:
        await asyncio.gather(*(wrapper.stop(grace=1) for wrapper in wrappers))
    assert addresses == ["127.0.0.1:1"] * 5
    assert gate.most == 2


async def test_a_wrapper_gets_the_gates_environment_only() -> None:
    gate = StartGate({"PATH": "/usr/bin:/bin", "ONLY_THIS": "1"}, at_once=1)
    script = "import json, os, sys; print(json.dumps(sorted(os.environ)), file=sys.stderr)"
    with pytest.raises(WrapperStartFailed) as failed:
        await ScriptedWrapper(script, gate).start()
    # only what the gate gave (Python may add LC_CTYPE on its own)
    named = set(json.loads(failed.value.reason or "[]")) - {"LC_CTYPE"}
    assert named == {"PATH", "ONLY_THIS"}


async def test_a_load_error_is_told_apart_from_a_crash() -> None:
    gate = StartGate(at_once=1)
    refused = (
        "import sys; print('2026-01-01 00:00:00,000 INFO ketch.serve: loading', file=sys.stderr);"
        "print(\"ketch serve: cannot load model 'm': no such file\", file=sys.stderr);"
        "sys.exit(1)"
    )
    with pytest.raises(WrapperStartFailed) as failed:
        await ScriptedWrapper(refused, gate).start()
    assert failed.value.status == 1
    assert failed.value.reason == "cannot load model 'm': no such file"
    assert failed.value.load_error
    assert str(failed.value) == (
        "m v1 #0: exited with status 1 before reporting ready: cannot load model 'm': no such file"
    )
    crash = "raise RuntimeError('boom')"
    with pytest.raises(WrapperStartFailed) as crashed:
        await ScriptedWrapper(crash, gate).start()
    assert (crashed.value.status, crashed.value.reason) == (1, "RuntimeError: boom")
    assert not crashed.value.load_error, "a crash, not ketch serve's own refusal"
    killed = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(WrapperStartFailed) as died:
        await ScriptedWrapper(killed, gate).start()
    assert died.value.status == -9
    assert not died.value.load_error
    silent = "import time; time.sleep(60)"
    with pytest.raises(WrapperStartFailed) as hung:
        await ScriptedWrapper(silent, gate, timeout=0.5).start()
    assert hung.value.status is None
    assert not hung.value.load_error
    assert "no ready line within 0.5 s" in str(hung.value)


def test_the_last_meaningful_line() -> None:
    log = [
        "2026-01-01 00:00:00,000 INFO ketch.serve: malloc tuned",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "ValueError: bad",
        "2026-01-01 00:00:01,000 INFO ketch.serve: stopped",
        "",
    ]
    assert last_meaningful_line(log) == "ValueError: bad"
    assert last_meaningful_line([*log, "ketch serve: cannot load"]) == "cannot load"
    assert last_meaningful_line(["2026-01-01 00:00:00,000 INFO x: y"]) is None


def test_the_wrapper_environment_is_an_allow_list() -> None:
    gateway = {
        "PATH": "/bin",
        "HOME": "/root",
        "LC_ALL": "C",
        "PYTHONPATH": "/src",
        "KETCH_EXTRA_PLUGINS": "a:b",
        "KETCH_ADMIN_TOKEN": "t",
        "REDIS_PASSWORD": "p",
        "AWS_SECRET_ACCESS_KEY": "k",
        "MY_MODEL_SETTING": "1",
        "MY_OTHER": "2",
        "HF_HOME": "/hf",
    }
    plain = WrapperSettings().environment(gateway)
    assert sorted(plain) == ["HOME", "KETCH_EXTRA_PLUGINS", "LC_ALL", "PATH", "PYTHONPATH"]
    named = WrapperSettings(env=("MY_*", "HF_HOME", "KETCH_ADMIN_TOKEN")).environment(gateway)
    assert set(named) - set(plain) == {"MY_MODEL_SETTING", "MY_OTHER", "HF_HOME"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_counts_failures_per_address() -> None:
    clock = Clock()
    throttle = AuthThrottle(failures=3, window_s=60, clock=clock)
    for _ in range(3):
        assert throttle.wait_s("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == pytest.approx(20.0)
    assert throttle.wait_s("10.0.0.2") == 0, "another address is not held up"
    clock.now += 15
    assert throttle.wait_s("10.0.0.1") == pytest.approx(5.0)
    clock.now += 5
    assert throttle.wait_s("10.0.0.1") == 0, "one more try every window / failures seconds"
    throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == pytest.approx(20.0)
    throttle.succeeded("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 0


def test_the_throttle_remembers_a_bounded_number_of_addresses() -> None:
    throttle = AuthThrottle(failures=1, window_s=60, clock=Clock())
    for index in range(MAX_ADDRESSES + 5):
        throttle.failed(f"addr-{index}")
    assert len(throttle) == MAX_ADDRESSES
    assert throttle.wait_s("addr-0") == 0, "the oldest are forgotten"
    assert throttle.wait_s(f"addr-{MAX_ADDRESSES + 4}") > 0
