"""The parent of ``ketch gateway --workers N``: one port, N worker processes, supervised.

The parent serves no request itself. It holds the port, starts the managed wrappers
once, starts the workers and says it is ready once every worker is. A worker that
exits while the gateway runs is restarted with backoff, counted
(``ketch_worker_restarts``) and logged. SIGTERM or SIGINT stops every worker the way
one gateway stops (each answers what it accepted), then the wrappers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.multiprocess import mark_process_dead

from ketch_gateway.background import cancel_and_wait
from ketch_gateway.control.config import GatewayConfig
from ketch_gateway.control.supervisor import RestartPolicy, WrapperStartFailed
from ketch_gateway.metrics import MULTIPROCESS_VARIABLE
from ketch_gateway.workers.parent_wrappers import ParentWrapperSet
from ketch_gateway.workers.role import WORKER_VARIABLE, ParentWrappers, WorkerRole

__all__ = ["WorkerPool", "WorkerStartFailed", "run_workers"]

_log = logging.getLogger("ketch.gateway.workers")

READY_PREFIX: Final = "KETCH_GATEWAY_READY "
STOP_GRACE_S: Final = 60.0
"""How long a worker may take to drain (uvicorn's 30 s, then stopping) before SIGKILL."""
HANDLED_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class WorkerStartFailed(RuntimeError):
    """A worker exited, or said nothing, before it was ready."""


@dataclass(frozen=True)
class WorkerLaunch:
    """How every worker is started.

    :param command: the worker's command line (``ketch gateway`` with the parent's settings).
    :param listen_fd: the shared listening socket, or None (each worker binds with SO_REUSEPORT).
    :param metrics_folder: prometheus-client's multiprocess folder, shared by the workers.
    """

    command: Sequence[str]
    listen_fd: int | None
    wrappers: ParentWrappers
    metrics_folder: str
    startup_timeout_s: float = 180.0


class WorkerPool:
    """N worker processes: started, watched, restarted, stopped."""

    def __init__(
        self, launch: WorkerLaunch, count: int, policy: RestartPolicy | None = None
    ) -> None:
        self.launch = launch
        self.count = count
        self.policy = policy or RestartPolicy()
        self.restarts = 0
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._pumps: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    @property
    def pids(self) -> list[int]:
        """The workers' process ids, by index."""
        return [self.processes[index].pid for index in sorted(self.processes)]

    async def start(self) -> None:
        """Start every worker and wait until each is ready; WorkerStartFailed if one is not."""
        results = await asyncio.gather(
            *(self._spawn(index) for index in range(self.count)), return_exceptions=True
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            raise failure
        loop = asyncio.get_running_loop()
        self._watchers = [loop.create_task(self._watch(i)) for i in range(self.count)]

    async def _spawn(self, index: int) -> None:
        launch = self.launch
        role = WorkerRole(index, os.getpid(), launch.listen_fd, launch.wrappers, self.restarts)
        environment = {
            **os.environ,
            WORKER_VARIABLE: role.encoded(),
            MULTIPROCESS_VARIABLE: launch.metrics_folder,
        }
        process = await asyncio.create_subprocess_exec(
            *launch.command,
            stdout=asyncio.subprocess.PIPE,
            env=environment,
            pass_fds=() if launch.listen_fd is None else (launch.listen_fd,),
        )
        self.processes[index] = process
        try:
            await asyncio.wait_for(self._ready(index, process), launch.startup_timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise WorkerStartFailed(
                f"worker {index} was not ready within {launch.startup_timeout_s:g} s"
            ) from None
        pump = asyncio.get_running_loop().create_task(_discard_output(process))
        self._pumps.add(pump)
        pump.add_done_callback(self._pumps.discard)

    async def _ready(self, index: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            line = (await process.stdout.readline()).decode(errors="replace")
            if not line:
                status = await process.wait()
                raise WorkerStartFailed(
                    f"worker {index} exited with status {status} before it was ready "
                    "(its log above says why)"
                )
            if line.startswith(READY_PREFIX):
                return

    async def _watch(self, index: int) -> None:
        """Restart worker ``index`` whenever it exits, until the pool stops."""
        delay = self.policy.initial
        while True:
            process = self.processes[index]
            started = time.monotonic()
            status = await process.wait()
            if self._stopping.is_set():
                return
            mark_process_dead(process.pid, self.launch.metrics_folder)  # type: ignore[no-untyped-call]
            if time.monotonic() - started > self.policy.stable:
                delay = self.policy.initial
            _log.warning(
                "gateway worker %d (pid %d) exited with status %s; restarting in %.1f s",
                index,
                process.pid,
                status,
                delay,
            )
            while not self._stopping.is_set():
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.policy.maximum)
                if self._stopping.is_set():
                    return
                self.restarts += 1
                try:
                    await self._spawn(index)
                except WorkerStartFailed as error:
                    _log.error("%s; retrying in %.1f s", error, delay)
                    continue
                _log.warning(
                    "gateway worker %d is back (pid %d); %d worker restart(s) so far",
                    index,
                    self.processes[index].pid,
                    self.restarts,
                )
                break

    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM every worker (each drains as one gateway does); SIGKILL after ``grace``."""
        self._stopping.set()
        for watcher in self._watchers:
            await cancel_and_wait(watcher)
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        waiting = asyncio.gather(*(process.wait() for process in running))
        try:
            await asyncio.wait_for(waiting, grace)
        except TimeoutError:
            _log.warning("gateway workers did not stop within %.0f s; killing them", grace)
            for process in running:
                if process.returncode is None:
                    process.kill()
            await asyncio.gather(*(process.wait() for process in running))
        for pump in list(self._pumps):
            await cancel_and_wait(pump)


async def _discard_output(process: asyncio.subprocess.Process) -> None:
    """Read what a ready worker still writes to its standard output, so it never blocks."""
    assert process.stdout is not None
    while await process.stdout.read(65536):
        pass


def run_workers(
    config: GatewayConfig, command: Sequence[str], sock: socket.socket, url: str, count: int
) -> int:
    """Run the parent until SIGTERM: 0 after a clean stop, 1 when start-up failed.

    ``sock`` listens (shared between the workers), or only holds the port (SO_REUSEPORT).
    """
    folder = tempfile.mkdtemp(prefix="ketch-gateway-metrics-")
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 0
        wrappers = ParentWrapperSet(config)
        plan = _Plan(command, sock if listening else None, folder, count)
        return asyncio.run(_run(wrappers, plan, url))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        sock.close()


@dataclass(frozen=True)
class _Plan:
    """What the parent starts: ``count`` workers running ``command``."""

    command: Sequence[str]
    shared: socket.socket | None
    metrics_folder: str
    count: int


async def _run(wrappers: ParentWrapperSet, plan: _Plan, url: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in HANDLED_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    pool: WorkerPool | None = None
    try:
        starting = loop.create_task(_start(wrappers, plan))
        stopped = loop.create_task(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            await cancel_and_wait(starting)
            return 0
        await cancel_and_wait(stopped)
        try:
            pool = starting.result()
        except (WorkerStartFailed, WrapperStartFailed, OSError) as error:
            print(f"ketch gateway: cannot start: {error}", file=sys.stderr, flush=True)
            return 1
        ready = {"url": url, "pid": os.getpid(), "workers": pool.pids}
        print(READY_PREFIX + json.dumps(ready), flush=True)
        _log.info("%d workers serving on %s", plan.count, url)
        await stop.wait()
        return 0
    finally:
        for sig in HANDLED_SIGNALS:
            loop.remove_signal_handler(sig)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopping: finish stopping everything
        if pool is not None:
            await pool.stop()
        await wrappers.stop()


async def _start(wrappers: ParentWrapperSet, plan: _Plan) -> WorkerPool:
    """The wrappers first (the workers join them), then the workers."""
    await wrappers.start()
    shared = None if plan.shared is None else plan.shared.fileno()
    launch = WorkerLaunch(plan.command, shared, wrappers.addresses(), plan.metrics_folder)
    pool = WorkerPool(launch, plan.count)
    try:
        await pool.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await pool.stop(grace=10.0)
        raise
    return pool
