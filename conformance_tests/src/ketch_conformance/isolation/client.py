"""The suite's side of a worker process: calls with a time limit, and what became of the worker.

:class:`HookWorker` starts ``python -m ketch_conformance.isolation.worker``, sends it
requests and waits for each reply at most the call's time limit. If the worker
exits or is killed, every call waiting on it fails with a :class:`PluginFault`
saying how it ended (exit status, signal) and which plugin call was in progress;
if a call gets no answer in time, the worker is killed and the call fails with
"no answer". :class:`WorkerHooks` offers the worker's hooks as :class:`Hooks`,
and :class:`IsolatedSubject` is the in-process subject the suite checks through
them, which starts a fresh worker (and loads the model again) after a fault.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, Final

import numpy as np

from ketch import ModelSpec, Signature
from ketch_conformance.faults import PluginFault, ProcessFault, exit_fault, hang_fault
from ketch_conformance.isolation.protocol import MAIN_LANE, RaisedError, decode_error
from ketch_conformance.subjects import InProcessSubject, describe_batch
from ketch_conformance.target import ConformanceTarget
from ketch_conformance.usage import Usage

__all__ = ["HookWorker", "IsolatedSubject", "RemoteModel", "WorkerHooks", "worker_environment"]

WORKER_LABEL: Final = "the worker process that runs the hooks"
STOP_TIMEOUT: Final = 5.0


def worker_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for a worker: this one, ``env`` over it, and the folders imported from.

    The folders on this process's ``sys.path`` outside the Python installation (a
    project, its tests) come last on ``PYTHONPATH``, so that the worker imports a
    plugin this process can import.
    """
    installation = {Path(prefix).resolve() for prefix in (sys.prefix, sys.base_prefix)}
    ours = []
    for entry in sys.path:
        path = Path(entry or os.getcwd()).resolve()
        if path.is_dir() and not any(path.is_relative_to(root) for root in installation):
            ours.append(str(path))
    merged = {**os.environ, **env}
    paths = [*merged.get("PYTHONPATH", "").split(os.pathsep), *ours]
    merged["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path for path in paths if path))
    return merged


@dataclass
class _Pending:
    """A call waiting for its reply."""

    call: str
    done: threading.Event = field(default_factory=threading.Event)
    succeeded: bool = False
    value: Any = None


def _pump(stream: IO[bytes], tail: deque[str], echo: IO[str] | None) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace")
        tail.append(line)
        if echo is not None:
            try:
                echo.write(line)
                echo.flush()
            except (OSError, ValueError):
                echo = None


class HookWorker:
    """One worker process for one plugin: start it, call it, and know how it ended.

    :param plugin: the plugin's name or import reference, as ``ketch serve`` takes it.
    :param env: extra environment variables for the worker.
    :param call_timeout: seconds one call may take before the worker is killed.
    :param startup_timeout: seconds the worker may take to start, and a model to load.
    """

    label = WORKER_LABEL

    def __init__(
        self,
        plugin: str,
        env: Mapping[str, str],
        *,
        call_timeout: float,
        startup_timeout: float = 120.0,
    ) -> None:
        self.plugin = plugin
        self.env = dict(env)
        self.call_timeout = call_timeout
        self.startup_timeout = max(startup_timeout, call_timeout)
        self.generation = 0
        self.log_tail: deque[str] = deque(maxlen=200)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._fault: ProcessFault | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._log_pump: threading.Thread | None = None

    @property
    def pid(self) -> int:
        """The worker's process id."""
        assert self._process is not None
        return self._process.pid

    def start(self) -> str:
        """Start a worker and select the plugin there; the plugin's name."""
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ketch_conformance.isolation.worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=worker_environment(self.env),
        )
        theirs.close()
        self._connection = Connection(ours.detach())
        self.generation += 1
        self._fault = None
        self.log_tail.clear()
        assert self._process.stdout is not None
        self._log_pump = threading.Thread(
            target=_pump,
            args=(self._process.stdout, self.log_tail, sys.__stderr__),
            name="ketch-conformance-worker-log",
            daemon=True,
        )
        self._log_pump.start()
        hello = _Pending("starting the worker")
        self._pending[0] = hello
        threading.Thread(
            target=self._receive,
            args=(self._connection, self._process, self._log_pump),
            name="ketch-conformance-worker-replies",
            daemon=True,
        ).start()
        self._wait(hello, self.startup_timeout)
        name: str = self.call("select", (self.plugin,), f"selecting the plugin {self.plugin!r}")
        return name

    def _receive(
        self, connection: Connection, process: subprocess.Popen[bytes], log: threading.Thread
    ) -> None:
        """Hand each reply to its caller; when the worker is gone, fail every caller."""
        try:
            while True:
                request_id, succeeded, value = connection.recv()
                with self._lock:
                    pending = self._pending.pop(request_id, None)
                if pending is not None:
                    pending.succeeded, pending.value = succeeded, value
                    pending.done.set()
        except (EOFError, OSError):
            pass
        try:
            status = process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        log.join(STOP_TIMEOUT)  # the last words of a crash, before they are quoted
        if process is self._process:
            self._ended(status)

    def _ended(self, status: int) -> None:
        """The worker exited: record how, during what, and fail the calls waiting."""
        with self._lock:
            if self._fault is None:
                tail = "".join(self.log_tail)
                self._fault = exit_fault(self.label, status, self._in_progress_locked(), tail)
            waiting = list(self._pending.values())
            self._pending.clear()
        for pending in waiting:
            pending.succeeded, pending.value = False, PluginFault(self._fault)
            pending.done.set()

    def _in_progress_locked(self) -> str:
        calls = [pending.call for pending in self._pending.values()]
        if not calls:
            return "no plugin call (between calls)"
        more = f" (and {len(calls) - 1} more calls at once)" if len(calls) > 1 else ""
        return calls[0] + more

    def _hung(self, pending: _Pending, seconds: float) -> None:
        """A call had no answer in time: record it, and kill the worker."""
        with self._lock:
            if self._fault is None:
                self._fault = hang_fault(self.label, seconds, pending.call, "".join(self.log_tail))
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    def _wait(self, pending: _Pending, timeout: float) -> Any:
        if not pending.done.wait(timeout):
            self._hung(pending, timeout)
            pending.done.wait(STOP_TIMEOUT + 1.0)
            assert self._fault is not None
            raise PluginFault(self._fault)
        if pending.succeeded:
            return pending.value
        if isinstance(pending.value, PluginFault):
            raise pending.value
        assert isinstance(pending.value, RaisedError)
        raise decode_error(pending.value)

    def call(
        self, operation: str, arguments: tuple[Any, ...], call: str, timeout: float | None = None
    ) -> Any:
        """Run ``operation`` in the worker; ``call`` names the plugin call for a verdict.

        :raises PluginFault: the worker is gone, or gave no answer within the limit.
        :raises Exception: what the plugin raised, rebuilt here.
        """
        if self._fault is not None:
            raise PluginFault(self._fault)
        assert self._connection is not None
        pending = _Pending(call)
        request_id = next(self._ids)
        with self._lock:
            self._pending[request_id] = pending
        on_main_thread = threading.current_thread() is threading.main_thread()
        lane = MAIN_LANE if on_main_thread else threading.get_ident()
        try:
            with self._send_lock:
                self._connection.send((request_id, lane, operation, arguments))
        except OSError:
            pass  # the worker is gone: the reply thread fails this call
        return self._wait(pending, timeout or self.call_timeout)

    @property
    def fault(self) -> ProcessFault | None:
        """How the worker ended (or hung), or None while it answers."""
        return self._fault

    def _end(self, *, kill: bool) -> None:
        """Close the connection, wait for the worker to exit (or kill it), close its log."""
        process, self._process = self._process, None
        if self._connection is not None:
            self._connection.close()
        if process is None:
            return
        if kill and process.poll() is None:
            process.kill()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._log_pump is not None:
            self._log_pump.join(STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()

    def stop(self) -> None:
        """Close the connection (the worker exits at once) and wait for it; kill it if need be."""
        self._end(kill=False)

    def restart(self) -> str:
        """Stop this worker and start a fresh one; the plugin's name."""
        self._end(kill=True)
        return self.start()


@dataclass(frozen=True)
class RemoteModel:
    """A model handle that lives in a worker process (of one ``generation``)."""

    generation: int
    handle: int


class WorkerHooks:
    """A plugin's hooks, called in a :class:`HookWorker`; model handles are :class:`RemoteModel`."""

    def __init__(self, worker: HookWorker, name: str) -> None:
        self.worker = worker
        self.name = name

    def _handle(self, model: object) -> int:
        if not isinstance(model, RemoteModel) or model.generation != self.worker.generation:
            raise RuntimeError(f"{model!r} is not a model of the current worker process")
        return model.handle

    def _model(self, handle: int) -> RemoteModel:
        return RemoteModel(self.worker.generation, handle)

    def load(self, spec: ModelSpec) -> object:
        """``ketch_load`` in the worker (with the worker's start-up time limit)."""
        fields = (spec.path, spec.name, spec.version, spec.device, dict(spec.options))
        handle = self.worker.call(
            "load", fields, f"ketch_load of {spec.path}", self.worker.startup_timeout
        )
        return self._model(handle)

    def place(self, model: object, device: str) -> object:
        """``ketch_place`` in the worker."""
        handle = self.worker.call(
            "place", (self._handle(model), device), f"ketch_place on {device!r}"
        )
        return self._model(handle)

    def signature(self, model: object) -> Signature:
        """``ketch_signature`` in the worker."""
        signature: Signature = self.worker.call(
            "signature", (self._handle(model),), "ketch_signature"
        )
        return signature

    def batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> Mapping[str, np.ndarray]:
        """``ketch_batch_predict`` in the worker; inputs read-only here stay so there."""
        read_only = frozenset(
            name for name, array in inputs.items() if not np.asarray(array).flags.writeable
        )
        arrays = {name: np.asarray(array) for name, array in inputs.items()}
        outputs: Mapping[str, np.ndarray] = self.worker.call(
            "batch_predict",
            (self._handle(model), arrays, read_only),
            f"ketch_batch_predict on {describe_batch(arrays)}",
        )
        return outputs

    def observe(self, model: object, inputs: Mapping[str, np.ndarray], labels: np.ndarray) -> bool:
        """``ketch_observe`` in the worker."""
        arrays = {name: np.asarray(array) for name, array in inputs.items()}
        changed: bool = self.worker.call(
            "observe",
            (self._handle(model), arrays, np.asarray(labels)),
            f"ketch_observe on {describe_batch(arrays)} and its labels",
        )
        return changed

    def example_inputs(self, model: object, rows: int) -> Mapping[str, np.ndarray] | None:
        """``ketch_example_inputs`` in the worker."""
        examples: Mapping[str, np.ndarray] | None = self.worker.call(
            "example_inputs", (self._handle(model), rows), f"ketch_example_inputs for {rows} rows"
        )
        return examples

    def probe(self, name: str, model: object, arguments: tuple[Any, ...]) -> Any:
        """The probe ``name`` in the worker (each calls ``ketch_batch_predict``)."""
        batch = describe_batch(arguments[0]) if arguments else "its sample"
        call = f"ketch_batch_predict on {batch} ({name.replace('_', ' ')})"
        return self.worker.call("probe", (name, self._handle(model), arguments), call)

    def usage(self) -> Usage:
        """The worker's threads, files, memory, heap and device memory."""
        usage: Usage = self.worker.call("usage", (), "reading its own memory use")
        return usage


class IsolatedSubject(InProcessSubject):
    """The target's model in a worker process: a crash or a hang there fails one check only.

    Start one with :meth:`start`; :meth:`renew` (the suite calls it before each
    check) replaces a worker that died or hung, and loads the model again.
    """

    framework: WorkerHooks
    process_label = WORKER_LABEL

    def __init__(
        self, hooks: WorkerHooks, target: ConformanceTarget, model: object, signature: Signature
    ) -> None:
        super().__init__(hooks, model, signature)
        self.target = target

    @classmethod
    def start(cls, target: ConformanceTarget) -> IsolatedSubject:
        """A worker for ``target``'s plugin, with the target's model loaded and placed."""
        worker = HookWorker(target.plugin, target.env, call_timeout=target.call_timeout)
        try:
            hooks = WorkerHooks(worker, worker.start())
            model = hooks.place(hooks.load(target.spec()), target.device)
            return cls(hooks, target, model, hooks.signature(model))
        except BaseException:
            worker.stop()
            raise

    def load_fresh(self, target: ConformanceTarget, device: str | None = None) -> IsolatedSubject:
        """The target loaded again in the same worker."""
        spec = target.spec(device)
        model = self.framework.place(self.framework.load(spec), spec.device)
        return IsolatedSubject(self.framework, target, model, self.framework.signature(model))

    def run_probe(self, name: str, *args: object) -> Any:
        """Run the probe in the worker, on the arrays the plugin sees there."""
        return self.framework.probe(name, self.model, args)

    def usage(self) -> Usage:
        """The worker's threads, files, memory, heap and device memory."""
        return self.framework.usage()

    def fault(self) -> ProcessFault | None:
        """How the worker ended or hung since it started, or None while it answers."""
        return self.framework.worker.fault

    def renew(self) -> None:
        """After a fault, start a fresh worker and load the model in it again."""
        worker = self.framework.worker
        if worker.fault is None:
            return
        worker.restart()
        self.model = self.framework.place(
            self.framework.load(self.target.spec()), self.target.device
        )
        self.memo = type(self.memo)()

    def close(self) -> None:
        """Stop the worker."""
        self.framework.worker.stop()
