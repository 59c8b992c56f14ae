"""The two ways the suite reaches a wrapper: its hooks in process, and ``ketch serve`` over gRPC."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

import numpy as np

from ketch import (
    Framework,
    InvalidInputError,
    Signature,
    WrapperCallError,
    WrapperClient,
    WrapperProcess,
    select_framework,
)
from ketch.proto import grpc_service_pb2 as pb
from ketch_conformance.failures import ConformanceFailure
from ketch_conformance.target import ConformanceTarget

__all__ = ["GrpcSubject", "InProcessSubject", "Memo", "Subject", "load_in_process", "read_only"]

Value = TypeVar("Value")


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
    signature: Signature
    memo: Memo

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs for a batch; raises ConformanceFailure when the call fails."""
        ...

    def rejection(self, inputs: Mapping[str, np.ndarray], what: str) -> str:
        """The error message for bad input; ConformanceFailure unless it is a clear rejection."""
        ...


def read_only(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Views of the arrays that cannot be written to."""
    views = {}
    for name, array in inputs.items():
        view = np.asarray(array).view()
        view.flags.writeable = False
        views[name] = view
    return views


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class InProcessSubject:
    """The plugin's hooks, called directly through the plugin manager (no runtime checks)."""

    label = "in process"

    def __init__(self, framework: Framework, model: object, signature: Signature) -> None:
        self.framework = framework
        self.model = model
        self.signature = signature
        self.memo = Memo()

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``ketch_batch_predict`` on read-only views of the batch, as inputs from the wire are."""
        try:
            outputs = self.framework.batch_predict(self.model, read_only(inputs))
        except Exception as error:
            raise ConformanceFailure(
                f"ketch_batch_predict raised {_describe(error)} on a valid batch"
            ) from error
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
        except Exception as error:
            raise ConformanceFailure(
                f"{what}: ketch_batch_predict raised {_describe(error)}; the contract asks "
                "for ketch.InvalidInputError with a message that says what was expected"
            ) from error
        raise ConformanceFailure(f"{what}: ketch_batch_predict accepted it instead of raising")


def load_in_process(target: ConformanceTarget, device: str | None = None) -> InProcessSubject:
    """Select the plugin, then load, place and describe the target's model through the hooks."""
    framework = select_framework(target.plugin, plugin=target.plugin_object, autoload=False)
    spec = target.spec(device)
    model = framework.load(spec)
    model = framework.place(model, spec.device)
    return InProcessSubject(framework, model, framework.signature(model))


class GrpcSubject:
    """A real ``ketch serve`` process, called through the Open Inference Protocol."""

    label = "over gRPC"

    def __init__(self, process: WrapperProcess, signature: Signature) -> None:
        self.process = process
        self.client = WrapperClient(process.address, model=process.ready.model, timeout=60.0)
        self.signature = signature
        self.memo = Memo()

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """ModelInfer on the batch."""
        try:
            return self.client.infer(inputs)
        except WrapperCallError as error:
            raise ConformanceFailure(f"ModelInfer failed on a valid batch: {error}") from error

    def _expect_error(self, code: str, what: str, call: Callable[[], object]) -> str:
        try:
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

    def close(self) -> None:
        """Close the client (the process is the fixture's to stop)."""
        self.client.close()
