"""Wrapper processes the gateway starts, watches, restarts and stops.

Each managed wrapper is a ``ketch serve`` child process on a free port, started
with ``--exit-with-parent`` so that it stops by itself if the gateway dies
without a chance to stop it (SIGKILL). One that exits while the gateway runs is
restarted with exponential backoff, and the log says why. A :class:`StartGate`
gives every child its environment (the allow-list of
:mod:`~ketch_gateway.control.wrapper_env`, never the gateway's own) and lets a
bounded number start at once, so that scaling up or restarting many wrappers does
not load every model on the host at the same moment. A child that fails to start
says why on its standard error; :class:`WrapperStartFailed` carries that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from ketch.process import LISTENING_PREFIX, READY_PREFIX, parse_ready_line, serve_command
from ketch_gateway.control.config import LaunchSpec

__all__ = [
    "ManagedWrapper",
    "RestartPolicy",
    "StartGate",
    "WrapperStartFailed",
    "last_meaningful_line",
]

_log = logging.getLogger(__name__)

SERVE_ERROR_PREFIX: Final = "ketch serve: "
_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+ (DEBUG|INFO|WARNING) ")
STDERR_LINES_KEPT: Final = 50
LOG_DRAIN_S: Final = 5.0


def last_meaningful_line(lines: Iterable[str]) -> str | None:
    """What a wrapper said last about why it stopped.

    Its own error line (``ketch serve: ...``, without the prefix), else the last
    line that is not an ordinary log record (the end of a traceback), else None.
    """
    kept = [line.strip() for line in lines if line.strip()]
    for line in reversed(kept):
        if line.startswith(SERVE_ERROR_PREFIX):
            return line[len(SERVE_ERROR_PREFIX) :]
    return next((line for line in reversed(kept) if not _LOG_RECORD.match(line)), None)


class WrapperStartFailed(RuntimeError):
    """A managed wrapper exited, or said nothing, before reporting ready.

    :param status: its exit status (None when it did not exit: it was stopped after
        saying nothing in time).
    :param reason: what the wrapper itself said (:func:`last_meaningful_line`).
    :param refused: whether that was ``ketch serve``'s own error line.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        reason: str | None = None,
        *,
        refused: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.refused = refused

    @property
    def load_error(self) -> bool:
        """Whether the wrapper refused its model or arguments, rather than crash or hang.

        ``ketch serve`` exits 1 when the model cannot load and 2 for bad arguments,
        with a line that says why (``ketch serve: ...``) on its standard error.
        """
        return self.status in (1, 2) and self.refused


class StartGate:
    """How managed wrappers start: their environment, and at most ``at_once`` at a time.

    :param environment: every child's whole environment (None: the gateway's own).
    """

    def __init__(self, environment: Mapping[str, str] | None = None, at_once: int = 4) -> None:
        self.environment = dict(environment) if environment is not None else None
        self.at_once = at_once
        self._slots: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``at_once`` places while a child starts."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.at_once)
        async with self._slots:
            yield


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
    """One supervised ``ketch serve`` child; ``on_ready`` learns each new address.

    :param keep_port: restart on the port the first start got, so that its address stays
        the same (for the workers of ``--workers N``, which learn it once).
    """

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
        gate: StartGate | None = None,
        keep_port: bool = False,
    ) -> None:
        self.label = label
        self.model = model
        self.version = version
        self.launch = launch
        self.on_ready = on_ready
        self.on_exit = on_exit
        self.policy = policy or RestartPolicy()
        self.gate = gate or StartGate()
        self.address: str | None = None
        self.keep_port = keep_port
        self.port = 0
        self.restarts = 0
        self._process: asyncio.subprocess.Process | None = None
        self._stop = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._logs: asyncio.Task[None] | None = None
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES_KEPT)

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
            port=self.port,
            exit_with_parent=True,
        )

    async def start(self) -> str:
        """Start the child and wait until it reports ready; its address."""
        address = await self._spawn()
        self._watch = asyncio.get_running_loop().create_task(self._supervise())
        return address

    async def _spawn(self) -> str:
        async with self.gate.slot():
            return await self._spawn_now()

    async def _spawn_now(self) -> str:
        self._stderr.clear()
        self._process = await asyncio.create_subprocess_exec(
            *self._command(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.gate.environment,
        )
        self._logs = asyncio.get_running_loop().create_task(self._relay_log(self._process))
        try:
            address = await asyncio.wait_for(
                self._read_ready(self._process), self.policy.startup_timeout
            )
        except (TimeoutError, WrapperStartFailed) as error:
            raise await self._start_failure(error) from None
        self.address = address
        if self.keep_port:
            self.port = int(address.rsplit(":", 1)[1])
        self.on_ready(address)
        _log.info("%s is ready on %s (pid %s)", self.label, address, self._process.pid)
        return address

    async def _start_failure(self, error: Exception) -> WrapperStartFailed:
        """Stop the child and say why it did not start, in its own words where it gave some."""
        await self._kill()
        if self._logs is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._logs), LOG_DRAIN_S)
        assert self._process is not None
        status = self._process.returncode if isinstance(error, WrapperStartFailed) else None
        reason = last_meaningful_line(self._stderr)
        refused = any(line.startswith(SERVE_ERROR_PREFIX) for line in self._stderr)
        what = str(error) or f"no ready line within {self.policy.startup_timeout:g} s"
        message = f"{self.label}: {what}" + (f": {reason}" if reason else "")
        return WrapperStartFailed(message, status, reason, refused=refused)

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
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            _log.info("[%s] %s", self.label, text)

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
