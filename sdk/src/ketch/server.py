"""The gRPC wrapper server: one model behind the Open Inference Protocol.

It serves ``inference.GRPCInferenceService``, the standard ``grpc.health.v1``
health service and ``ketch.v1.ObserveService``. The port is bound before the
model loads, so that liveness answers during a long load; readiness, health
and inference wait until the model can answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ketch.calls import CallScope, serving_call
from ketch.errors import (
    CallCancelled,
    ContractViolation,
    DeviceUnavailableError,
    InvalidInputError,
    KetchError,
    ModelNotFoundError,
    ModelNotReadyError,
)
from ketch.framework import Framework
from ketch.model_spec import ModelSpec
from ketch.proto import grpc_service_pb2 as pb
from ketch.proto import ketch_observe_pb2 as observe_pb
from ketch.range_parameters import fill_parameters, range_parameters
from ketch.runtime import ModelRuntime
from ketch.telemetry.wrapper_telemetry import WrapperTelemetry
from ketch.tls import ServerTls
from ketch.version import __version__
from ketch.warm_threads import WarmThreadPool
from ketch.wire import decode_tensors, infer_response

__all__ = [
    "INFERENCE_SERVICE",
    "MODEL_SERVICE",
    "OBSERVE_SERVICE",
    "WrapperServer",
    "grpc_address",
]

INFERENCE_SERVICE: Final = "inference.GRPCInferenceService"
OBSERVE_SERVICE: Final = "ketch.v1.ObserveService"
MODEL_SERVICE: Final = "ketch.v1.ModelService"
SERVER_NAME: Final = "ketch"

_log = logging.getLogger(__name__)

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)

_STATUS_BY_ERROR: Final[tuple[tuple[type[Exception], grpc.StatusCode], ...]] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ModelNotReadyError, grpc.StatusCode.UNAVAILABLE),
    (DeviceUnavailableError, grpc.StatusCode.FAILED_PRECONDITION),
    (ContractViolation, grpc.StatusCode.INTERNAL),
)


KEEPALIVE_SERVER_OPTIONS: Final = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 500),
    ("grpc.http2.max_ping_strikes", 0),
)
"""Accept a client's keepalive pings every half second, with or without calls.

The gateway pings its wrappers that often to notice within two seconds a host that
vanished without closing its connections; gRPC's defaults would answer such pings
with GOAWAY (too_many_pings).
"""


def grpc_address(host: str, port: int) -> str:
    """``host:port`` with an IPv6 host in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _status_for(error: Exception) -> grpc.StatusCode:
    if isinstance(error, CallCancelled):
        return grpc.StatusCode.DEADLINE_EXCEEDED if error.expired else grpc.StatusCode.CANCELLED
    for kind, code in _STATUS_BY_ERROR:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _guarded(
    behaviour: Callable[[Request], Response],
) -> Callable[[Request, grpc.ServicerContext], Response]:
    """A gRPC method that answers every failure with a status and a message, never a crash."""

    def method(request: Request, context: grpc.ServicerContext) -> Response:
        try:
            return behaviour(request)
        except CallCancelled as error:
            _log.debug("%s", error)
            context.abort(_status_for(error), str(error))
        except Exception as error:
            code = _status_for(error)
            if isinstance(error, KetchError):
                message = str(error)
            else:
                message = f"{type(error).__name__}: {error}"
            if code is grpc.StatusCode.INTERNAL:
                _log.error("internal error: %s", message, exc_info=error)
            context.abort(code, message)

    return method


class _WrapperState:
    """What the services share: the model, once loaded, and whether we are stopping."""

    def __init__(self, spec: ModelSpec, framework: Framework) -> None:
        self.spec = spec
        self.framework = framework
        self.runtime: ModelRuntime | None = None
        self.stopping = False

    @property
    def ready(self) -> bool:
        return self.runtime is not None and not self.stopping

    def names_model(self, name: str, version: str) -> bool:
        """Whether (name, version) denote the served model; empty strings match it."""
        return name in ("", self.spec.name) and version in ("", self.spec.version)

    def model(self, name: str, version: str) -> ModelRuntime:
        if not self.names_model(name, version):
            wanted = f"{name!r}" + (f" version {version!r}" if version else "")
            raise ModelNotFoundError(
                f"unknown model {wanted}; this wrapper serves {self.spec.name!r} "
                f"version {self.spec.version!r}"
            )
        runtime = self.runtime
        if runtime is None:
            raise ModelNotReadyError(f"model {self.spec.name!r} is still loading")
        return runtime


class _InferenceService:
    """The Open Inference Protocol's methods over the shared state."""

    def __init__(self, state: _WrapperState) -> None:
        self.state = state

    def server_live(self, request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    def server_ready(self, request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.state.ready)

    def model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        if not self.state.names_model(request.name, request.version):
            self.state.model(request.name, request.version)  # raises NOT_FOUND
        return pb.ModelReadyResponse(ready=self.state.ready)

    def server_metadata(self, request: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        runtime = self.state.runtime
        observes = runtime.observes if runtime is not None else self.state.framework.observes
        extensions = ["ketch_observe"] if observes else []
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=__version__, extensions=extensions
        )

    def model_metadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        runtime = self.state.model(request.name, request.version)
        signature = runtime.signature
        response = pb.ModelMetadataResponse(
            name=runtime.name,
            versions=[runtime.version],
            platform=signature.platform or runtime.framework.name,
        )
        for specs, target in (
            (signature.inputs, response.inputs),
            (signature.outputs, response.outputs),
        ):
            for spec in specs:
                tensor = target.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
                fill_parameters(tensor.parameters, range_parameters(spec))
        return response

    def model_infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        runtime = self.state.model(request.model_name, request.model_version)
        inputs = decode_tensors(request.inputs, request.raw_input_contents)
        requested = [output.name for output in request.outputs]
        outputs = runtime.predict(inputs, requested or None)
        return infer_response(
            outputs,
            runtime.signature.output_datatypes,
            model=runtime.name,
            version=runtime.version,
            request_id=request.id,
        )

    def capabilities(
        self, request: observe_pb.CapabilitiesRequest
    ) -> observe_pb.CapabilitiesResponse:
        runtime = self.state.model(request.model_name, request.model_version)
        capabilities = runtime.signature.capabilities
        response = observe_pb.CapabilitiesResponse(
            devices=list(capabilities.devices),
            observe=runtime.observes,
            max_batch=capabilities.max_batch or 0,
            rtol=capabilities.tolerance.rtol,
            atol=capabilities.tolerance.atol,
            persists_observations=runtime.observes and capabilities.persists_observations,
        )
        if runtime.observes and capabilities.labels is not None:
            response.labels.kind = capabilities.labels.kind
            response.labels.classes.extend(capabilities.labels.classes)
        return response

    def observe(self, request: observe_pb.ObserveRequest) -> observe_pb.ObserveResponse:
        runtime = self.state.model(request.model_name, request.model_version)
        inputs = decode_tensors(request.inputs, request.raw_input_contents)
        if not request.HasField("labels"):
            raise InvalidInputError("labels: missing; send one label per input row")
        labels = decode_tensors([request.labels], [request.raw_labels])[request.labels.name]
        changed = runtime.observe(inputs, labels)
        return observe_pb.ObserveResponse(changed=changed, rows=labels.shape[0])


def _in_call_scope(
    method: Callable[[Request, grpc.ServicerContext], Response],
) -> Callable[[Request, grpc.ServicerContext], Response]:
    """Run ``method`` in a CallScope that carries the gRPC call's deadline and cancellation."""

    def scoped(request: Request, context: grpc.ServicerContext) -> Response:
        scope = CallScope.from_time_remaining(context.time_remaining())

        def ended() -> None:
            reason = "its deadline passed" if scope.expired() else "the caller cancelled it"
            scope.cancel(f"the call ended: {reason}")

        if not context.add_callback(ended):
            ended()  # the call had already ended before it reached us
        with serving_call(scope):
            return method(request, context)

    return scoped


def _unary(
    behaviour: Callable[[Request], Response],
    request_type: type[Request],
    *,
    scoped: bool = False,
) -> grpc.RpcMethodHandler[Request, Response]:
    method = _guarded(behaviour)
    return grpc.unary_unary_rpc_method_handler(
        _in_call_scope(method) if scoped else method,
        request_deserializer=request_type.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


def _handlers(service: _InferenceService) -> list[grpc.GenericRpcHandler[Any, Any]]:
    inference = grpc.method_handlers_generic_handler(
        INFERENCE_SERVICE,
        {
            "ServerLive": _unary(service.server_live, pb.ServerLiveRequest),
            "ServerReady": _unary(service.server_ready, pb.ServerReadyRequest),
            "ModelReady": _unary(service.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": _unary(service.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": _unary(service.model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": _unary(service.model_infer, pb.ModelInferRequest, scoped=True),
        },
    )
    observe = grpc.method_handlers_generic_handler(
        OBSERVE_SERVICE, {"Observe": _unary(service.observe, observe_pb.ObserveRequest)}
    )
    model = grpc.method_handlers_generic_handler(
        MODEL_SERVICE,
        {"Capabilities": _unary(service.capabilities, observe_pb.CapabilitiesRequest)},
    )
    return [inference, observe, model]


def _observed(
    handlers: list[grpc.GenericRpcHandler[Any, Any]], telemetry: WrapperTelemetry | None
) -> list[grpc.GenericRpcHandler[Any, Any]]:
    return handlers if telemetry is None else [telemetry.observe(h) for h in handlers]


class WrapperServer:
    """A gRPC server for one model: bind with :meth:`start`, then :meth:`load`, then :meth:`stop`.

    :param framework: the selected framework plugin.
    :param spec: the model to serve.
    :param max_batch: an upper bound on rows per call, on top of the plugin's own.
    :param workers: threads that run calls; more calls than this wait their turn. A call
        runs on the thread that finished a call last (:class:`ketch.warm_threads.WarmThreadPool`),
        so calls that do not overlap meet the framework warm on one thread.
    :param max_message_bytes: the largest request or response accepted.
    :param telemetry: metrics and traces of the calls and the plugin's batches.
    :param tls: serve TLS with this certificate and key (and require client
        certificates when it names a client CA); plaintext without it.
    """

    def __init__(
        self,
        framework: Framework,
        spec: ModelSpec,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_batch: int | None = None,
        workers: int = 16,
        max_message_bytes: int = 256 * 1024 * 1024,
        telemetry: WrapperTelemetry | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        self.framework = framework
        self.telemetry = telemetry
        if telemetry is not None:
            framework.manager.register(telemetry.plugin(framework.name), name="ketch-telemetry")
        self.tls = tls
        self.spec = spec
        self.host = host
        self.requested_port = port
        self.max_batch = max_batch
        self.port = 0
        self._state = _WrapperState(spec, framework)
        self._health = health.HealthServicer(
            experimental_non_blocking=True,
            experimental_thread_pool=ThreadPoolExecutor(max_workers=2),
        )
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
            *KEEPALIVE_SERVER_OPTIONS,
        ]
        self._server = grpc.server(
            WarmThreadPool(workers, thread_name_prefix="ketch-call"),
            handlers=_observed(_handlers(_InferenceService(self._state)), telemetry),
            options=options,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        """``host:port`` the server listens on (after :meth:`start`)."""
        return grpc_address(self.host, self.port)

    @property
    def runtime(self) -> ModelRuntime | None:
        """The loaded model, or None while it loads."""
        return self._state.runtime

    def start(self) -> str:
        """Bind the port and start answering liveness; return the address."""
        wanted = grpc_address(self.host, self.requested_port)
        try:
            if self.tls is None:
                self.port = self._server.add_insecure_port(wanted)
            else:
                self.port = self._server.add_secure_port(wanted, self.tls.credentials())
        except RuntimeError as error:
            raise OSError(f"cannot listen on {wanted}: {error}") from error
        if self.port == 0:
            raise OSError(f"cannot listen on {wanted}")
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._server.start()
        if self.telemetry is not None:
            self.telemetry.bound(self.address)
        return self.address

    def load(self) -> ModelRuntime:
        """Load the model; from then on the server is ready and healthy."""
        started = time.perf_counter()
        runtime = ModelRuntime.load(self.framework, self.spec, max_batch=self.max_batch)
        if self.telemetry is not None:
            self.telemetry.model_loaded(
                time.perf_counter() - started, runtime.signature.platform or self.framework.name
            )
        self._state.runtime = runtime
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        return runtime

    def stop(self, grace: float | None = 30.0) -> None:
        """Refuse new calls, finish the calls in flight (up to ``grace`` s), unload the model."""
        self._state.stopping = True
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        runtime = self._state.runtime
        if runtime is not None:
            try:
                runtime.unload()
            except Exception:
                _log.exception("ketch_unload failed for model %r", runtime.name)
        if self.telemetry is not None:
            self.telemetry.close()
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` has finished; whether it has."""
        return self._stopped.wait(timeout)

    def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for service in ("", INFERENCE_SERVICE):
            self._health.set(service, status)
