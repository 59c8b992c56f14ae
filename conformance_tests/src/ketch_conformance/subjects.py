"""The two ways the suite reaches a wrapper: its hooks, and ``ketch serve`` over gRPC.

An :class:`InProcessSubject` calls a plugin's hooks through anything that has
them (:class:`Hooks`): a :class:`ketch.Framework` in this process, as
:func:`load_in_process` builds, or the hooks of a worker process
(:mod:`ketch_conformance.isolation`), which is how the suite runs them so that a
plugin that crashes or hangs cannot take the run with it. A :class:`GrpcSubject`
calls a real ``ketch serve`` process, and starts a fresh one after that one died
or hung.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, Protocol, TypeVar

import numpy as np

from ketch import (
    InvalidInputError,
    ModelSpec,
    Signature,
    WrapperCallError,
    WrapperClient,
    WrapperProcess,
    select_framework,
)
from ketch.proto import grpc_service_pb2 as pb
from ketch_conformance.failures import ConformanceFailure
from ketch_conformance.faults import PluginFault, ProcessFault, exit_fault, hang_fault
from ketch_conformance.probes import PROBES, Outputs, read_only
from ketch_conformance.target import ConformanceTarget
from ketch_conformance.usage import Usage, own_usage, usage_of

__all__ = [
    "GrpcSubject",
    "Hooks",
    "InProcessSubject",
    "Memo",
    "Subject",
    "describe_batch",
    "error_name",
    "load_in_process",
    "load_with",
    "read_only",
]

Value = TypeVar("Value")
DEATH_WAIT: Final = 2.0
"""Seconds to wait for a process whose connection broke to finish exiting."""


class Memo:
    """Results that several checks share (one costly scenario, judged by several rules).

    A result is computed once; an exception it raised is raised again to every
    check that asks for it.
    """

    def __init__(self) -> None:
        self._results: dict[str, tuple[bool, object]] = {}

    def get(self, key: str, compute: Callable[[], Value]) -> Value:
        """The result stored under ``key``, computed by ``compute`` the first time."""
        if key not in self._results:
            try:
                self._results[key] = (True, compute())
            except Exception as error:
                self._results[key] = (False, error)
        succeeded, value = self._results[key]
        if not succeeded:
            assert isinstance(value, Exception)
            raise value
        return value  # type: ignore[return-value]


class Subject(Protocol):
    """A wrapper the checks can call."""

    label: str
    process_label: str
    signature: Signature
    memo: Memo

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs for a batch; raises ConformanceFailure when the call fails."""
        ...

    def rejection(self, inputs: Mapping[str, np.ndarray], what: str) -> str:
        """The error message for bad input; ConformanceFailure unless it is a clear rejection."""
        ...

    def usage(self) -> Usage:
        """What the process that runs the plugin holds (threads, files, memory)."""
        ...

    def renew(self) -> None:
        """Start a fresh process when the last one died or hung (before a check)."""
        ...

    def fault(self) -> ProcessFault | None:
        """What became of the process since :meth:`renew`, or None while it answers."""
        ...

    def close(self) -> None:
        """Let go of what the subject holds."""
        ...


class Hooks(Protocol):
    """A framework plugin's hooks, as :class:`ketch.Framework` offers them."""

    name: str

    def load(self, spec: ModelSpec) -> object:
        """``ketch_load``: a handle for the model."""
        ...

    def place(self, model: object, device: str) -> object:
        """``ketch_place``: the handle on ``device``."""
        ...

    def signature(self, model: object) -> Signature:
        """``ketch_signature``."""
        ...

    def batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> Mapping[str, np.ndarray]:
        """``ketch_batch_predict``, unchecked."""
        ...

    def observe(self, model: object, inputs: Mapping[str, np.ndarray], labels: np.ndarray) -> bool:
        """``ketch_observe``."""
        ...

    def example_inputs(self, model: object, rows: int) -> Mapping[str, np.ndarray] | None:
        """``ketch_example_inputs``: the plugin's own sample rows, or None."""
        ...


def error_name(error: BaseException) -> str:
    """The name of the error's type (a stand-in for one raised in a worker keeps the original)."""
    return type(error).__name__


def _describe(error: BaseException) -> str:
    return f"{error_name(error)}: {error}"


def describe_batch(inputs: Mapping[str, Any]) -> str:
    """``a batch of 12 rows ('input' [12, 64] float32)``: how verdicts name a call's batch."""
    arrays = {name: np.asarray(array) for name, array in inputs.items()}
    rows = len(next(iter(arrays.values()))) if arrays and next(iter(arrays.values())).ndim else 0
    shapes = ", ".join(
        f"{name!r} {list(array.shape)} {array.dtype}" for name, array in list(arrays.items())[:3]
    )
    more = f" and {len(arrays) - 3} more" if len(arrays) > 3 else ""
    return f"a batch of {rows} row{'s' if rows != 1 else ''} ({shapes}{more})"


@contextmanager
def _on_a_valid_batch() -> Iterator[None]:
    """A plugin call on a valid batch: an error it raises (other than a fault) is a failure."""
    try:
        yield
    except PluginFault:
        raise
    except Exception as error:
        raise ConformanceFailure(
            f"ketch_batch_predict raised {_describe(error)} on a valid batch"
        ) from error


class InProcessSubject:
    """A model loaded through a plugin's hooks, called directly (no runtime checks between)."""

    label = "in process"
    process_label = "this process (the hooks, in process)"

    def __init__(self, framework: Hooks, model: object, signature: Signature) -> None:
        self.framework = framework
        self.model = model
        self.signature = signature
        self.memo = Memo()

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``ketch_batch_predict`` on read-only views of the batch, as inputs from the wire are."""
        with _on_a_valid_batch():
            outputs = self.framework.batch_predict(self.model, read_only(inputs))
        if not isinstance(outputs, Mapping):
            raise ConformanceFailure(
                f"ketch_batch_predict returned {type(outputs).__name__}, not a mapping"
            )
        return dict(outputs)

    def rejection(self, inputs: Mapping[str, np.ndarray], what: str) -> str:
        """The InvalidInputError message ``ketch_batch_predict`` raises for ``inputs``."""
        try:
            self.framework.batch_predict(self.model, inputs)
        except InvalidInputError as error:
            return str(error)
        except PluginFault:
            raise
        except Exception as error:
            raise ConformanceFailure(
                f"{what}: ketch_batch_predict raised {_describe(error)}; the contract asks "
                "for ketch.InvalidInputError with a message that says what was expected"
            ) from error
        raise ConformanceFailure(f"{what}: ketch_batch_predict accepted it instead of raising")

    def load_fresh(self, target: ConformanceTarget, device: str | None = None) -> InProcessSubject:
        """The target loaded again through the same hooks (a model no other check has touched)."""
        return load_with(self.framework, target, device)

    def run_probe(self, name: str, *args: object) -> Any:
        """Run the probe ``name`` (see :mod:`ketch_conformance.probes`) on this model."""
        return PROBES[name](self.framework, self.model, *args)

    def _probe(self, name: str, *args: object) -> Any:
        with _on_a_valid_batch():
            return self.run_probe(name, *args)

    def inputs_after_call(self, inputs: Mapping[str, np.ndarray]) -> Outputs:
        """Writable copies of ``inputs`` as ``ketch_batch_predict`` left them."""
        result: Outputs = self._probe("inputs_after_call", dict(inputs))
        return result

    def outputs_across_calls(
        self, first: Mapping[str, np.ndarray], second: Mapping[str, np.ndarray]
    ) -> tuple[Outputs, Outputs]:
        """The first batch's outputs as returned, and the same arrays after a call on the second."""
        result: tuple[Outputs, Outputs] = self._probe(
            "outputs_across_calls", dict(first), dict(second)
        )
        return result

    def usage(self) -> Usage:
        """The threads, files and memory of the process the hooks run in (this one)."""
        return own_usage()

    def renew(self) -> None:
        """Nothing to renew: the hooks run in this process."""

    def fault(self) -> ProcessFault | None:
        """None: a fault here would have ended the run."""
        return None

    def close(self) -> None:
        """Nothing to let go of."""


def load_with(
    hooks: Hooks, target: ConformanceTarget, device: str | None = None
) -> InProcessSubject:
    """Load, place and describe the target's model through ``hooks``."""
    spec = target.spec(device)
    model = hooks.load(spec)
    model = hooks.place(model, spec.device)
    return InProcessSubject(hooks, model, hooks.signature(model))


def load_in_process(target: ConformanceTarget, device: str | None = None) -> InProcessSubject:
    """Select the plugin in this process, then load, place and describe the target's model."""
    framework = select_framework(target.plugin, plugin=target.plugin_object, autoload=False)
    return load_with(framework, target, device)


class GrpcSubject:
    """A real ``ketch serve`` process, called through the Open Inference Protocol.

    Every ModelInfer gives up after ``call_timeout`` seconds. A call that got no
    answer in time, or a process that died, is a :class:`PluginFault` naming the
    call; :meth:`renew` then replaces the process through ``restart``.
    """

    label = "over gRPC"
    process_label = "the wrapper process (ketch serve)"

    def __init__(
        self,
        process: WrapperProcess,
        signature: Signature,
        *,
        call_timeout: float = 60.0,
        restart: Callable[[], WrapperProcess] | None = None,
    ) -> None:
        self.process = process
        self.signature = signature
        self.call_timeout = call_timeout
        self.client = self._client()
        self.memo = Memo()
        self._restart = restart
        self._started: list[WrapperProcess] = []
        self._fault: ProcessFault | None = None
        self._last_call = "no call yet"

    def _client(self) -> WrapperClient:
        return WrapperClient(
            self.process.address, model=self.process.ready.model, timeout=self.call_timeout
        )

    def _log_tail(self) -> str:
        return "".join(list(self.process.stderr_tail)[-40:])

    def _diagnose(self, error: WrapperCallError, call: str) -> PluginFault | None:
        """The fault behind a failed call: no answer in time, or a process that died."""
        if error.code == "DEADLINE_EXCEEDED":
            self._fault = hang_fault(self.process_label, self.call_timeout, call, self._log_tail())
            return PluginFault(self._fault)
        deadline = time.monotonic() + DEATH_WAIT
        while self.process.alive() and time.monotonic() < deadline and error.code == "UNAVAILABLE":
            time.sleep(0.02)
        status = self.process.process.poll()
        if status is None:
            return None
        self._fault = exit_fault(self.process_label, status, call, self._log_tail())
        return PluginFault(self._fault)

    @contextmanager
    def calling(self, call: str) -> Iterator[None]:
        """Run a call to the wrapper, turning a hang or a death during it into a PluginFault."""
        self._last_call = call
        try:
            yield
        except WrapperCallError as error:
            fault = self._diagnose(error, call)
            if fault is not None:
                raise fault from error
            raise

    def infer(
        self, inputs: Mapping[str, np.ndarray], timeout: float | None = None
    ) -> dict[str, np.ndarray]:
        """ModelInfer on the batch; WrapperCallError as answered, PluginFault on a hang or death."""
        with self.calling(f"ModelInfer (ketch_batch_predict) on {describe_batch(inputs)}"):
            return self.client.infer(inputs, timeout=timeout)

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """ModelInfer on the batch."""
        try:
            return self.infer(inputs)
        except WrapperCallError as error:
            raise ConformanceFailure(f"ModelInfer failed on a valid batch: {error}") from error

    def _expect_error(self, code: str, what: str, call: Callable[[], object]) -> str:
        try:
            with self.calling(f"ModelInfer (ketch_batch_predict) on {what}"):
                call()
        except WrapperCallError as error:
            if error.code != code:
                raise ConformanceFailure(
                    f"{what}: ModelInfer answered {error.code} ({error.message}); expected {code}"
                ) from error
            return error.message
        raise ConformanceFailure(f"{what}: ModelInfer accepted it instead of answering {code}")

    def rejection(self, inputs: Mapping[str, np.ndarray], what: str) -> str:
        """The INVALID_ARGUMENT message ModelInfer answers for ``inputs``."""
        return self._expect_error("INVALID_ARGUMENT", what, lambda: self.client.infer(inputs))

    def raw_rejection(
        self, request: pb.ModelInferRequest, what: str, code: str = "INVALID_ARGUMENT"
    ) -> str:
        """The message of the ``code`` error that a hand-built request gets."""
        return self._expect_error(code, what, lambda: self.client.send_infer(request))

    def alive(self) -> bool:
        """Whether the process still runs and answers ServerLive."""
        if not self.process.alive():
            return False
        try:
            return self.client.live()
        except WrapperCallError:
            return False

    def usage(self) -> Usage:
        """The wrapper process's threads, files and resident memory, from ``/proc``."""
        return usage_of(self.process.pid)

    def fault(self) -> ProcessFault | None:
        """A hang or death seen since :meth:`renew`, or a process found dead now."""
        if self._fault is None and not self.process.alive():
            status = self.process.process.poll()
            assert status is not None
            call = f"the last call it was sent, {self._last_call}"
            self._fault = exit_fault(self.process_label, status, call, self._log_tail())
        return self._fault

    def renew(self) -> None:
        """After a hang or a death, stop what is left and start a fresh wrapper."""
        if self.fault() is None or self._restart is None:
            return
        self.client.close()
        self.process.stop(timeout=0.0)
        self.process = self._restart()
        self._started.append(self.process)
        self.client = self._client()
        self.memo = Memo()
        self._fault = None
        self._last_call = "no call yet"

    def close(self) -> None:
        """Close the client and stop the wrappers started here (the first is the fixture's)."""
        self.client.close()
        for process in self._started:
            process.stop()
