"""Starting and stopping ``ketch serve`` processes from Python.

A wrapper prints ``KETCH_LISTENING {"address": ...}`` on standard output once
its port is bound (liveness answers from then on), and ``KETCH_READY {json}``
once its model can answer; everything else it says goes to standard error.
Parents (the gateway's supervisor, the tests, the benchmarks) wait for the
ready line.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self, TypedDict, Unpack

from ketch.errors import KetchError

__all__ = [
    "LISTENING_PREFIX",
    "READY_PREFIX",
    "ChildProcess",
    "ReadyInfo",
    "ServeOptions",
    "WrapperProcess",
    "WrapperStartError",
    "format_listening_line",
    "format_ready_line",
    "parse_ready_line",
    "start_child",
    "start_wrapper",
    "stop_when_orphaned",
]

READY_PREFIX: Final = "KETCH_READY "
LISTENING_PREFIX: Final = "KETCH_LISTENING "


class WrapperStartError(KetchError):
    """A wrapper (or gateway) process exited or fell silent before reporting ready."""


@dataclass(frozen=True, slots=True)
class ReadyInfo:
    """What a wrapper announces once ready."""

    address: str
    model: str
    version: str
    plugin: str
    pid: int
    metrics: str | None = None
    """``host:port`` of the Prometheus metrics, when ``--metrics-port`` serves them."""

    def as_json(self) -> dict[str, Any]:
        """The announcement's fields."""
        fields: dict[str, Any] = {
            "address": self.address,
            "model": self.model,
            "version": self.version,
            "plugin": self.plugin,
            "pid": self.pid,
        }
        if self.metrics is not None:
            fields["metrics"] = self.metrics
        return fields


def format_listening_line(address: str) -> str:
    """The line a wrapper prints once its port is bound, before the model loads."""
    return LISTENING_PREFIX + json.dumps({"address": address})


def format_ready_line(info: ReadyInfo) -> str:
    """The one machine-readable line a wrapper prints when ready."""
    return READY_PREFIX + json.dumps(info.as_json(), sort_keys=True)


def parse_ready_line(line: str) -> ReadyInfo | None:
    """The announcement in ``line``, or None when it is another line."""
    if not line.startswith(READY_PREFIX):
        return None
    fields = json.loads(line[len(READY_PREFIX) :])
    return ReadyInfo(
        address=str(fields["address"]),
        model=str(fields["model"]),
        version=str(fields["version"]),
        plugin=str(fields["plugin"]),
        pid=int(fields["pid"]),
        metrics=str(fields["metrics"]) if fields.get("metrics") else None,
    )


def _pump_stdout(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _pump_stderr(stream: IO[str], tail: deque[str], echo: IO[str] | None) -> None:
    for line in stream:
        tail.append(line)
        if echo is not None:
            try:
                echo.write(line)
                echo.flush()
            except (OSError, ValueError):
                echo = None


def _close_pipes(process: subprocess.Popen[str], pumps: Sequence[threading.Thread]) -> None:
    """Close the child's pipes once the threads that read them have seen the end."""
    for pump in pumps:
        pump.join(timeout=5.0)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@dataclass
class ChildProcess:
    """A child process that announced itself ready; stop it with :meth:`stop` or ``with``."""

    process: subprocess.Popen[str]
    ready_line: str
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=200))
    pumps: tuple[threading.Thread, ...] = ()
    terminated: bool = False

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def terminate(self) -> None:
        """Send SIGTERM (once): the child finishes what is in flight, then exits 0."""
        if self.alive() and not self.terminated:
            self.terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait up to ``timeout`` seconds (then SIGKILL); the exit status."""
        self.terminate()
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        _close_pipes(self.process, self.pumps)
        return status

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class WrapperProcess(ChildProcess):
    """A running ``ketch serve`` child process."""

    @property
    def ready(self) -> ReadyInfo:
        """What the wrapper announced."""
        info = parse_ready_line(self.ready_line)
        assert info is not None
        return info

    @property
    def address(self) -> str:
        """``host:port`` where the wrapper listens."""
        return self.ready.address


def start_child(
    command: Sequence[str],
    ready_prefix: str,
    *,
    label: str,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 120.0,
    echo_stderr: bool = True,
) -> ChildProcess:
    """Run ``command`` and return once it prints a line starting with ``ready_prefix``.

    :param label: how errors name the child.
    :param echo_stderr: copy the child's log to this process's standard error.
    :raises WrapperStartError: the child exited, or printed no ready line within
        ``startup_timeout`` seconds; the message carries the end of its log.
    """
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stdout_lines: queue.Queue[str | None] = queue.Queue()
    tail: deque[str] = deque(maxlen=200)
    stdout_pump = threading.Thread(
        target=_pump_stdout, args=(process.stdout, stdout_lines), daemon=True
    )
    stdout_pump.start()
    stderr_pump = threading.Thread(
        target=_pump_stderr,
        args=(process.stderr, tail, sys.__stderr__ if echo_stderr else None),
        daemon=True,
    )
    stderr_pump.start()

    def failure(reason: str) -> WrapperStartError:
        _close_pipes(process, (stdout_pump, stderr_pump))
        return WrapperStartError(f"{label} {reason}; its log ends:\n{''.join(tail)}")

    deadline = time.monotonic() + startup_timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            process.kill()
            process.wait()
            raise failure(f"did not report ready within {startup_timeout:.0f} s")
        try:
            line = stdout_lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            status = process.wait()
            raise failure(f"exited with status {status} before reporting ready")
        if line.startswith(ready_prefix):
            return ChildProcess(process, line.rstrip("\n"), tail, (stdout_pump, stderr_pump))


class ServeOptions(TypedDict, total=False):
    """The ``ketch serve`` settings that :func:`serve_command` and :func:`start_wrapper` take."""

    name: str | None
    version: str | None
    device: str | None
    host: str
    port: int
    max_batch: int | None
    options: Mapping[str, str] | None
    exit_with_parent: bool
    extra_args: Sequence[str]


def serve_command(
    plugin: str, model_path: str | Path, **settings: Unpack[ServeOptions]
) -> list[str]:
    """The command line that runs ``ketch serve`` with these settings (port 0 by default)."""
    command = [sys.executable, "-m", "ketch", "serve", plugin, str(model_path)]
    command += ["--host", settings.get("host", "127.0.0.1"), "--port", str(settings.get("port", 0))]
    for flag in ("name", "version", "device", "max_batch"):
        value = settings.get(flag)
        if value is not None:
            command += ["--" + flag.replace("_", "-"), str(value)]
    for key, value in (settings.get("options") or {}).items():
        command += ["--option", f"{key}={value}"]
    if settings.get("exit_with_parent"):
        command.append("--exit-with-parent")
    return command + list(settings.get("extra_args", ()))


def start_wrapper(
    plugin: str,
    model_path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 120.0,
    echo_stderr: bool = True,
    **settings: Unpack[ServeOptions],
) -> WrapperProcess:
    """Start ``ketch serve`` and return once it reports ready.

    :param echo_stderr: copy the wrapper's log to this process's standard error.
    :raises WrapperStartError: the wrapper exited, or said nothing ready within
        ``startup_timeout`` seconds; the message carries the end of its log.
    """
    child = start_child(
        serve_command(plugin, model_path, **settings),
        READY_PREFIX,
        label=f"ketch serve {plugin} {model_path}",
        env=env,
        startup_timeout=startup_timeout,
        echo_stderr=echo_stderr,
    )
    return WrapperProcess(child.process, child.ready_line, child.stderr_tail, child.pumps)


def stop_when_orphaned(parent: int, log: logging.Logger, interval: float = 0.5) -> None:
    """SIGTERM this process when ``parent`` dies (it is re-parented), so that no child is orphaned.

    A child started by a supervisor (a wrapper by the gateway, a gateway worker by its
    parent) stops by itself, gracefully, even when the supervisor was killed outright.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.warning("the parent process %d is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="ketch-parent-watch", daemon=True).start()
