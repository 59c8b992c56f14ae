"""A small client for wrapper processes: numpy in, numpy out.

:class:`WrapperClient` blocks; :class:`AsyncWrapperClient` is the same for
asyncio (the gateway uses it). Both speak the Open Inference Protocol over gRPC,
so they work against any OIP server, and raise :class:`ketch.WrapperCallError`
with the gRPC status name and the server's message when a call fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeVar, cast

import grpc
import grpc.aio
import numpy as np
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from ketch.errors import WrapperCallError
from ketch.proto import grpc_service_pb2 as pb
from ketch.proto import ketch_observe_pb2 as observe_pb
from ketch.range_parameters import parameter_values, ranges_from_parameters
from ketch.signature import Capabilities, LabelSpec, TensorSpec, Tolerance
from ketch.tls import ClientTls
from ketch.wire import infer_request, response_arrays, tensor_header

__all__ = [
    "AsyncWrapperClient",
    "ModelMetadata",
    "ObserveResult",
    "ServerMetadata",
    "WrapperClient",
]

_INFERENCE: Final = "/inference.GRPCInferenceService/"
_OBSERVE: Final = "/ketch.v1.ObserveService/Observe"
_CAPABILITIES: Final = "/ketch.v1.ModelService/Capabilities"
_HEALTH: Final = "/grpc.health.v1.Health/Check"
DEFAULT_MAX_MESSAGE_BYTES: Final = 256 * 1024 * 1024

Reply = TypeVar("Reply", bound=Message)


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """A server's name, version and protocol extensions."""

    name: str
    version: str
    extensions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """A model's name, versions, platform, and tensors (shapes keep the batch dimension)."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True, slots=True)
class ObserveResult:
    """What an Observe call did: whether the model changed, and how many rows it learnt from."""

    changed: bool
    rows: int


def _capabilities(response: observe_pb.CapabilitiesResponse) -> Capabilities:
    labels = None
    if response.observe and response.HasField("labels"):
        labels = LabelSpec(response.labels.kind, tuple(response.labels.classes))
    return Capabilities(
        devices=tuple(response.devices),
        observe=response.observe,
        max_batch=response.max_batch or None,
        tolerance=Tolerance(rtol=response.rtol, atol=response.atol),
        persists_observations=response.observe and response.persists_observations,
        labels=labels,
    )


def _tensor_spec(tensor: pb.ModelMetadataResponse.TensorMetadata) -> TensorSpec:
    shape = tuple(tensor.shape)
    ranges = ranges_from_parameters(shape, parameter_values(tensor.parameters))
    return TensorSpec(tensor.name, tensor.datatype, shape, ranges)


def _tensor_specs(
    tensors: Sequence[pb.ModelMetadataResponse.TensorMetadata],
) -> tuple[TensorSpec, ...]:
    return tuple(_tensor_spec(tensor) for tensor in tensors)


def _model_metadata(response: pb.ModelMetadataResponse) -> ModelMetadata:
    return ModelMetadata(
        name=response.name,
        versions=tuple(response.versions),
        platform=response.platform,
        inputs=_tensor_specs(response.inputs),
        outputs=_tensor_specs(response.outputs),
    )


def _observe_request(
    inputs: Mapping[str, np.ndarray], labels: np.ndarray, model: str, version: str
) -> observe_pb.ObserveRequest:
    request = observe_pb.ObserveRequest(model_name=model, model_version=version)
    for name, array in inputs.items():
        request.raw_input_contents.append(
            tensor_header(request.inputs.add(), name, np.asarray(array))
        )
    request.raw_labels = tensor_header(request.labels, "labels", np.asarray(labels))
    return request


def _call_error(error: grpc.RpcError) -> WrapperCallError:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else None
    name = code.name if code is not None else "UNKNOWN"
    return WrapperCallError(name, details or str(error))


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


ChannelOptions = Sequence[tuple[str, int | str]]
"""gRPC channel arguments, such as ``("grpc.keepalive_time_ms", 1000)``."""


def _channel_options(
    max_message_bytes: int, tls: ClientTls | None, extra: ChannelOptions = ()
) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        *extra,
    ]
    return options + (tls.channel_options() if tls else [])


class WrapperClient:
    """A blocking client for one wrapper (or any OIP gRPC server) at ``address``.

    :param model: the model to call when a method is not told another.
    :param timeout: seconds before a call gives up (DEADLINE_EXCEEDED), or None.
    :param tls: TLS for a wrapper that serves it (see ``ketch serve --tls-certificate``).
    """

    def __init__(
        self,
        address: str,
        *,
        model: str = "",
        timeout: float | None = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        tls: ClientTls | None = None,
    ) -> None:
        self.address = address
        self.model = model
        self.timeout = timeout
        options = _channel_options(max_message_bytes, tls)
        if tls is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            self._channel = grpc.secure_channel(address, tls.credentials(), options=options)
        self._stubs: dict[str, Any] = {}

    def _call(
        self,
        method: str,
        request: Message,
        response_type: type[Reply],
        timeout: float | None = None,
    ) -> Reply:
        stub = self._stubs.get(method)
        if stub is None:
            stub = self._channel.unary_unary(
                method,
                request_serializer=_serialize,
                response_deserializer=response_type.FromString,
            )
            self._stubs[method] = stub
        try:
            return cast(Reply, stub(request, timeout=self.timeout if timeout is None else timeout))
        except grpc.RpcError as error:
            raise _call_error(error) from None

    def live(self) -> bool:
        """Whether the server process is live."""
        response = self._call(
            _INFERENCE + "ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse
        )
        return response.live

    def ready(self) -> bool:
        """Whether the server can answer inference requests."""
        response = self._call(
            _INFERENCE + "ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse
        )
        return response.ready

    def model_ready(self, model: str | None = None, version: str = "") -> bool:
        """Whether the model can answer inference requests."""
        request = pb.ModelReadyRequest(name=self.model if model is None else model, version=version)
        response = self._call(_INFERENCE + "ModelReady", request, pb.ModelReadyResponse)
        return response.ready

    def health(self, service: str = "") -> str:
        """The ``grpc.health.v1`` status: ``SERVING``, ``NOT_SERVING``, ..."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = self._call(_HEALTH, request, health_pb2.HealthCheckResponse)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    def server_metadata(self) -> ServerMetadata:
        """The server's name, version and extensions."""
        response = self._call(
            _INFERENCE + "ServerMetadata", pb.ServerMetadataRequest(), pb.ServerMetadataResponse
        )
        return ServerMetadata(response.name, response.version, tuple(response.extensions))

    def model_metadata(self, model: str | None = None, version: str = "") -> ModelMetadata:
        """The model's versions, platform and tensors."""
        request = pb.ModelMetadataRequest(
            name=self.model if model is None else model, version=version
        )
        response = self._call(_INFERENCE + "ModelMetadata", request, pb.ModelMetadataResponse)
        return _model_metadata(response)

    def capabilities(self, model: str | None = None, version: str = "") -> Capabilities:
        """What the model can do beyond ModelMetadata.

        Its devices, whether it learns online, its maximum batch, the tolerance for
        comparing its outputs, whether what it learns persists, and its labels.
        """
        request = observe_pb.CapabilitiesRequest(
            model_name=self.model if model is None else model, model_version=version
        )
        return _capabilities(self._call(_CAPABILITIES, request, observe_pb.CapabilitiesResponse))

    def infer(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        model: str | None = None,
        version: str = "",
        outputs: Sequence[str] | None = None,
        request_id: str = "",
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """The model's outputs for a batch, by name (all outputs unless ``outputs`` names some).

        ``timeout`` overrides the client's for this call.
        """
        request = infer_request(
            inputs,
            model=self.model if model is None else model,
            version=version,
            outputs=outputs,
            request_id=request_id,
        )
        return response_arrays(self.send_infer(request, timeout=timeout))

    def send_infer(
        self, request: pb.ModelInferRequest, timeout: float | None = None
    ) -> pb.ModelInferResponse:
        """Send a ModelInfer request built by hand (tests, benchmarks, other encodings)."""
        return self._call(_INFERENCE + "ModelInfer", request, pb.ModelInferResponse, timeout)

    def observe(
        self,
        inputs: Mapping[str, np.ndarray],
        labels: np.ndarray,
        *,
        model: str | None = None,
        version: str = "",
    ) -> ObserveResult:
        """Teach an online-learning model from labelled rows."""
        request = _observe_request(inputs, labels, self.model if model is None else model, version)
        response = self._call(_OBSERVE, request, observe_pb.ObserveResponse)
        return ObserveResult(response.changed, response.rows)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncWrapperClient:
    """The asyncio twin of :class:`WrapperClient`; create and use it inside one event loop.

    :param channel_options: further gRPC channel arguments (keepalive, reconnect
        backoff), for a caller that must notice a vanished server quickly.
    """

    def __init__(
        self,
        address: str,
        *,
        model: str = "",
        timeout: float | None = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        channel_options: ChannelOptions = (),
        tls: ClientTls | None = None,
    ) -> None:
        self.address = address
        self.model = model
        self.timeout = timeout
        options = _channel_options(max_message_bytes, tls, channel_options)
        if tls is None:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(address, tls.credentials(), options=options)
        self._stubs: dict[str, Any] = {}

    async def _call(
        self,
        method: str,
        request: Message,
        response_type: type[Reply],
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> Reply:
        stub = self._stubs.get(method)
        if stub is None:
            stub = self._channel.unary_unary(
                method,
                request_serializer=_serialize,
                response_deserializer=response_type.FromString,
            )
            self._stubs[method] = stub
        try:
            wait = self.timeout if timeout is None else timeout
            return cast(Reply, await stub(request, timeout=wait, metadata=metadata))
        except grpc.RpcError as error:
            raise _call_error(error) from None

    async def ready(self) -> bool:
        """Whether the server can answer inference requests."""
        response = await self._call(
            _INFERENCE + "ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse
        )
        return response.ready

    async def health(self, service: str = "") -> str:
        """The ``grpc.health.v1`` status: ``SERVING``, ``NOT_SERVING``, ..."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = await self._call(_HEALTH, request, health_pb2.HealthCheckResponse)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    async def model_metadata(self, model: str | None = None, version: str = "") -> ModelMetadata:
        """The model's versions, platform and tensors."""
        request = pb.ModelMetadataRequest(
            name=self.model if model is None else model, version=version
        )
        response = await self._call(_INFERENCE + "ModelMetadata", request, pb.ModelMetadataResponse)
        return _model_metadata(response)

    async def capabilities(self, model: str | None = None, version: str = "") -> Capabilities:
        """What the model can do beyond ModelMetadata.

        Its devices, whether it learns online, its maximum batch, the tolerance for
        comparing its outputs, whether what it learns persists, and its labels.
        """
        request = observe_pb.CapabilitiesRequest(
            model_name=self.model if model is None else model, model_version=version
        )
        response = await self._call(_CAPABILITIES, request, observe_pb.CapabilitiesResponse)
        return _capabilities(response)

    async def infer(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        model: str | None = None,
        version: str = "",
        outputs: Sequence[str] | None = None,
        request_id: str = "",
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, np.ndarray]:
        """The model's outputs for a batch, by name; ``timeout`` overrides the client's.

        ``metadata`` goes with the call (the gateway sends a batch's W3C trace context).
        """
        request = infer_request(
            inputs,
            model=self.model if model is None else model,
            version=version,
            outputs=outputs,
            request_id=request_id,
        )
        response = await self._call(
            _INFERENCE + "ModelInfer", request, pb.ModelInferResponse, timeout, metadata
        )
        return response_arrays(response)

    async def observe(
        self,
        inputs: Mapping[str, np.ndarray],
        labels: np.ndarray,
        *,
        model: str | None = None,
        version: str = "",
    ) -> ObserveResult:
        """Teach an online-learning model from labelled rows."""
        request = _observe_request(inputs, labels, self.model if model is None else model, version)
        response = await self._call(_OBSERVE, request, observe_pb.ObserveResponse)
        return ObserveResult(response.changed, response.rows)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
