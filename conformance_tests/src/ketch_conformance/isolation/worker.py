"""The worker process: runs one plugin's hooks for the suite, on the suite's requests.

Started as ``python -m ketch_conformance.isolation.worker FD``, where ``FD`` is its
end of a socket pair. A thread receives requests and hands each to its lane: the
main lane runs on the main thread (where the suite's own checks would have called
the hooks, so that a plugin that installs a signal handler or keeps thread-local
state sees what it would in process); every other lane mirrors one thread of the
suite, so that calls the suite makes at once run at once here. When the suite
goes away (its end of the socket closes), the worker exits, whatever the plugin
is doing. ``faulthandler`` writes the Python stacks to standard error on a crash,
so the suite's verdict can quote where the plugin was.
"""

from __future__ import annotations

import faulthandler
import itertools
import os
import queue
import sys
import threading
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any, Final

import numpy as np

from ketch import ContractViolation, Framework, ModelSpec, select_framework
from ketch_conformance.isolation.protocol import (
    HELLO,
    MAIN_LANE,
    Request,
    encode_error,
)
from ketch_conformance.probes import PROBES
from ketch_conformance.usage import Usage, own_usage

__all__ = ["HookServer", "main"]

LANE_IDLE_SECONDS: Final = 2.0
"""How long a lane's thread waits for work before it ends (the main lane never ends)."""


def _arrays(mapping: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.asarray(array) for name, array in mapping.items()}


class HookServer:
    """The plugin's hooks, its models by handle, and the lanes that run requests."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.framework: Framework | None = None
        self.models: dict[int, object] = {}
        self._handles = itertools.count(1)
        self._send_lock = threading.Lock()
        self._lanes_lock = threading.Lock()
        self._lanes: dict[int, queue.SimpleQueue[Request]] = {}
        self._main: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self.operations: dict[str, Callable[..., Any]] = {
            "select": self.select,
            "load": self.load,
            "place": self.place,
            "signature": self.signature,
            "batch_predict": self.batch_predict,
            "observe": self.observe,
            "example_inputs": self.example_inputs,
            "probe": self.probe,
            "usage": self.usage,
        }

    # --- the operations ---------------------------------------------------------------------

    def _hooks(self) -> Framework:
        if self.framework is None:
            raise RuntimeError("no plugin selected yet")
        return self.framework

    def _keep(self, model: object) -> int:
        handle = next(self._handles)
        self.models[handle] = model
        return handle

    def select(self, reference: str) -> str:
        """Select the framework plugin ``reference``, as ``ketch serve`` does; its name."""
        self.framework = select_framework(reference, autoload=False)
        return self.framework.name

    def load(self, path: str, name: str, version: str, device: str, options: dict[str, str]) -> int:
        """``ketch_load``; a handle for the model."""
        spec = ModelSpec(path=path, name=name, version=version, device=device, options=options)
        return self._keep(self._hooks().load(spec))

    def place(self, handle: int, device: str) -> int:
        """``ketch_place``; a handle for the placed model."""
        return self._keep(self._hooks().place(self.models[handle], device))

    def signature(self, handle: int) -> Any:
        """``ketch_signature``."""
        return self._hooks().signature(self.models[handle])

    def batch_predict(
        self, handle: int, inputs: dict[str, np.ndarray], read_only: frozenset[str]
    ) -> Any:
        """``ketch_batch_predict`` on the inputs, those named in ``read_only`` made read-only."""
        for name in read_only & inputs.keys():
            inputs[name].flags.writeable = False
        outputs = self._hooks().batch_predict(self.models[handle], inputs)
        return _arrays(outputs) if isinstance(outputs, Mapping) else outputs

    def observe(self, handle: int, inputs: dict[str, np.ndarray], labels: np.ndarray) -> bool:
        """``ketch_observe``."""
        return self._hooks().observe(self.models[handle], inputs, labels)

    def example_inputs(self, handle: int, rows: int) -> dict[str, np.ndarray] | None:
        """``ketch_example_inputs``."""
        examples = self._hooks().example_inputs(self.models[handle], rows)
        return None if examples is None else _arrays(examples)

    def probe(self, name: str, handle: int, arguments: tuple[Any, ...]) -> Any:
        """One of :data:`ketch_conformance.probes.PROBES`, on the model."""
        return PROBES[name](self._hooks(), self.models[handle], *arguments)

    def usage(self) -> Usage:
        """The worker's threads, files, memory, heap and device memory."""
        return own_usage()

    # --- requests and lanes -----------------------------------------------------------------

    def _reply(self, request_id: int, succeeded: bool, value: object) -> None:
        with self._send_lock:
            self.connection.send((request_id, succeeded, value))

    def handle(self, request: Request) -> None:
        """Run one request and send its reply (its result, or the error it raised)."""
        request_id, _, operation, arguments = request
        try:
            result = self.operations[operation](*arguments)
        except BaseException as error:
            self._reply(request_id, False, encode_error(error))
            return
        try:
            self._reply(request_id, True, result)
        except Exception as error:
            problem = ContractViolation(
                f"{operation} returned {type(result).__name__}, which cannot be sent back "
                f"from the worker process: {error}"
            )
            self._reply(request_id, False, encode_error(problem))

    def _run_lane(self, lane: int, requests: queue.SimpleQueue[Request]) -> None:
        while True:
            try:
                request = requests.get(timeout=LANE_IDLE_SECONDS)
            except queue.Empty:
                with self._lanes_lock:
                    if requests.empty():
                        del self._lanes[lane]
                        return
                continue
            self.handle(request)

    def dispatch(self, request: Request) -> None:
        """Queue a request on its lane, starting the lane's thread when it has none."""
        lane = request[1]
        if lane == MAIN_LANE:
            self._main.put(request)
            return
        with self._lanes_lock:
            requests = self._lanes.get(lane)
            if requests is None:
                requests = self._lanes[lane] = queue.SimpleQueue()
                threading.Thread(
                    target=self._run_lane,
                    args=(lane, requests),
                    name=f"ketch-conformance-lane-{lane}",
                    daemon=True,
                ).start()
            requests.put(request)

    def receive(self) -> None:
        """Receive requests until the suite goes away; then end the process at once."""
        try:
            while True:
                self.dispatch(self.connection.recv())
        except (EOFError, OSError):
            os._exit(0)

    def serve(self) -> None:
        """Say hello, then run the main lane on this thread, for ever."""
        self._reply(0, True, HELLO)
        receiver = threading.Thread(
            target=self.receive, name="ketch-conformance-receiver", daemon=True
        )
        receiver.start()
        while True:
            self.handle(self._main.get())


def main(argv: list[str] | None = None) -> None:
    """Serve the suite on the socket whose file descriptor is the first argument."""
    arguments = sys.argv[1:] if argv is None else argv
    faulthandler.enable(all_threads=True)
    HookServer(Connection(int(arguments[0]))).serve()


if __name__ == "__main__":
    main()
