"""Wrapper processes the gateway starts, watches, restarts and stops.

Each managed wrapper is a ``ketch serve`` child process on a free port, started
with ``--exit-with-parent`` so that it stops by itself if the gateway dies
without a chance to stop it (SIGKILL). One that exits while the gateway runs is
restarted with exponential backoff, and the log says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ketch.process import LISTENING_PREFIX, READY_PREFIX, parse_ready_line, serve_command
from ketch_gateway.control.config import LaunchSpec

__all__ = ["ManagedWrapper", "RestartPolicy", "WrapperStartFailed"]

_log = logging.getLogger(__name__)


class WrapperStartFailed(RuntimeError):
    """A managed wrapper exited, or said nothing, before reporting ready."""


@dataclass(frozen=True)
class RestartPolicy:
    """How restarts back off.

    ``initial`` seconds, doubling up to ``maximum``; a wrapper that stayed up ``stable``
    seconds starts again from ``initial``.
    """

    initial: float = 0.5
    maximum: float = 30.0
    stable: float = 60.0
    startup_timeout: float = 120.0


class ManagedWrapper:
    """One supervised ``ketch serve`` child; ``on_ready`` learns each new address."""

    def __init__(
        self,
        label: str,
        *,
        model: str,
        version: str,
        launch: LaunchSpec,
        on_ready: Callable[[str], None],
        on_exit: Callable[[], None],
        policy: RestartPolicy | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.label = label
        self.environment = dict(environment or {})
        self.model = model
        self.version = version
        self.launch = launch
        self.on_ready = on_ready
        self.on_exit = on_exit
        self.policy = policy or RestartPolicy()
        self.address: str | None = None
        self.restarts = 0
        self._process: asyncio.subprocess.Process | None = None
        self._stop = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._logs: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id, while it runs."""
        return self._process.pid if self._process and self._process.returncode is None else None

    def _command(self) -> list[str]:
        return serve_command(
            self.launch.plugin,
            self.launch.path,
            name=self.model,
            version=self.version,
            device=self.launch.device,
            max_batch=self.launch.max_batch,
            options=self.launch.options,
            exit_with_parent=True,
        )

    async def start(self) -> str:
        """Start the child and wait until it reports ready; its address."""
        address = await self._spawn()
        self._watch = asyncio.get_running_loop().create_task(self._supervise())
        return address

    async def _spawn(self) -> str:
        self._process = await asyncio.create_subprocess_exec(
            *self._command(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **self.environment} if self.environment else None,
        )
        self._logs = asyncio.get_running_loop().create_task(self._relay_log(self._process))
        try:
            address = await asyncio.wait_for(
                self._read_ready(self._process), self.policy.startup_timeout
            )
        except (TimeoutError, WrapperStartFailed) as error:
            await self._kill()
            raise WrapperStartFailed(f"{self.label}: {error or 'no ready line in time'}") from None
        self.address = address
        self.on_ready(address)
        _log.info("%s is ready on %s (pid %s)", self.label, address, self._process.pid)
        return address

    async def _read_ready(self, process: asyncio.subprocess.Process) -> str:
        assert process.stdout is not None
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                status = await process.wait()
                raise WrapperStartFailed(f"exited with status {status} before reporting ready")
            if line.startswith(LISTENING_PREFIX):
                _log.debug(
                    "%s listens on %s", self.label, json.loads(line[len(LISTENING_PREFIX) :])
                )
            if line.startswith(READY_PREFIX):
                ready = parse_ready_line(line.strip())
                assert ready is not None
                return ready.address

    async def _relay_log(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            _log.info("[%s] %s", self.label, line.decode(errors="replace").rstrip())

    async def _supervise(self) -> None:
        delay = self.policy.initial
        while not self._stop.is_set():
            process = self._process
            assert process is not None
            started = time.monotonic()
            status = await process.wait()
            if self._stop.is_set():
                return
            self.on_exit()
            if time.monotonic() - started > self.policy.stable:
                delay = self.policy.initial
            _log.warning(
                "%s (pid %s) exited with status %s; restarting in %.1f s",
                self.label,
                process.pid,
                status,
                delay,
            )
            while not self._stop.is_set():
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.policy.maximum)
                if self._stop.is_set():
                    return
                try:
                    await self._spawn()
                except WrapperStartFailed as error:
                    _log.error(
                        "%s did not come back: %s; retrying in %.1f s", self.label, error, delay
                    )
                    continue
                self.restarts += 1
                break

    async def _kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    def describe(self) -> dict[str, object]:
        """What the admin API shows of it."""
        return {
            "label": self.label,
            "address": self.address,
            "pid": self.pid,
            "restarts": self.restarts,
        }

    async def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the child, wait up to ``grace`` seconds (then SIGKILL), stop supervising."""
        self._stop.set()
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                _log.warning("%s did not stop within %.0f s; killing it", self.label, grace)
                await self._kill()
        for task in (self._watch, self._logs):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
