"""What a ``ketch serve`` process observes of itself: its calls and its plugin's batches.

:class:`WrapperTelemetry` wraps each gRPC method (counting, timing and, when
tracing, spanning it) and gives the plugin manager a cross-cutting plugin that
wraps ``ketch_batch_predict``, so that the plugin's own share of a call is
measured whatever the framework. With neither metrics nor tracing it is not
built at all, and calls run as they would without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Final

import grpc
import numpy as np

from ketch.hookspecs import hookimpl
from ketch.telemetry.settings import TracingSettings

if TYPE_CHECKING:
    from ketch.telemetry.wrapper_metrics import MetricsEndpoint, WrapperMetrics
    from ketch.telemetry.wrapper_tracing import CallTracer

__all__ = ["TRACED_METHODS", "CallHandler", "WrapperTelemetry", "wrapper_telemetry"]

CallHandler = Callable[[Any, grpc.ServicerContext], Any]
TRACED_METHODS: Final = frozenset({"ModelInfer", "Observe"})
"""The calls that get a span: those that run the model (metadata and health calls do not)."""


def _details(context: grpc.ServicerContext) -> str:
    details = context.details()  # type: ignore[attr-defined]  # grpc-stubs lack it; grpc has it
    return details.decode() if isinstance(details, bytes) else str(details or "")


def _code(context: grpc.ServicerContext) -> str:
    code = context.code()  # type: ignore[attr-defined]  # grpc-stubs lack it; grpc has it
    return "OK" if code is None else code.name


class WrapperTelemetry:
    """Metrics, traces, or both, of one wrapper; ``replica`` is its address once bound."""

    def __init__(
        self,
        *,
        metrics: WrapperMetrics | None = None,
        tracer: CallTracer | None = None,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.endpoint: MetricsEndpoint | None = None

    def serve_metrics(self, host: str, port: int) -> int | None:
        """Serve the metrics (when measured) on ``host:port``; the port, or None."""
        if self.metrics is None:
            return None
        self.endpoint = self.metrics.serve(host, port)
        return self.endpoint.port

    def model_loaded(self, seconds: float, platform: str) -> None:
        """The model took ``seconds`` to load."""
        if self.metrics is not None:
            self.metrics.model_loaded(seconds, platform)

    def close(self) -> None:
        """Stop serving the metrics; export the spans not yet sent."""
        if self.endpoint is not None:
            self.endpoint.stop()
            self.endpoint = None
        if self.tracer is not None:
            self.tracer.tracing.shutdown()

    def bound(self, address: str) -> None:
        """The server listens on ``address`` (the ``replica`` attribute of spans)."""
        if self.tracer is not None:
            self.tracer.replica = address

    def wrap(self, service: str, method: str, handler: CallHandler) -> CallHandler:
        """``handler``, counted, timed and (for the model's calls) traced."""
        metrics = self.metrics
        tracer = self.tracer if method in TRACED_METHODS else None
        if metrics is not None:
            labels = metrics.labels
            in_flight = metrics.in_flight_now
            latency = metrics.call_latency.labels(*labels, method)
            ok = metrics.calls.labels(*labels, method, "OK")

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            call = (
                tracer.start_call(service, method, request, context) if tracer is not None else None
            )
            if metrics is not None:
                in_flight.inc()
                started = time.perf_counter()
            try:
                return handler(request, context)
            finally:
                code = _code(context)
                if metrics is not None:
                    in_flight.dec()
                    latency.observe(time.perf_counter() - started)
                    if code == "OK":
                        ok.inc()
                    else:
                        metrics.calls.labels(*labels, method, code).inc()
                        metrics.errors.labels(*labels, method, code).inc()
                if call is not None:
                    call.end(code, _details(context) if code != "OK" else None)

        return observed

    def observe(
        self, handler: grpc.GenericRpcHandler[Any, Any]
    ) -> grpc.GenericRpcHandler[Any, Any]:
        """A service's handler whose unary methods are :meth:`wrap`-ped."""
        return _ObservedService(handler, self)

    def plugin(self, plugin_name: str) -> object:
        """The cross-cutting plugin that observes ``ketch_batch_predict``."""
        return _PredictObserver(self, plugin_name)


class _ObservedService(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Finds a method in the service it wraps and observes it (each method wrapped once)."""

    def __init__(
        self, inner: grpc.GenericRpcHandler[Any, Any], telemetry: WrapperTelemetry
    ) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The method's handler, observed; None for a method of another service."""
        path = handler_call_details.method
        found = self._wrapped.get(path)
        if found is not None:
            return found
        handler = self._inner.service(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, _, method = path.strip("/").rpartition("/")
        found = grpc.unary_unary_rpc_method_handler(
            self._telemetry.wrap(service, method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[path] = found
        return found


class _PredictObserver:
    """Wraps the framework plugin's ``ketch_batch_predict``: rows, time, and a span."""

    def __init__(self, telemetry: WrapperTelemetry, plugin_name: str) -> None:
        self.telemetry = telemetry
        self.plugin_name = plugin_name

    @hookimpl(wrapper=True)
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> Generator[None, object, object]:
        """Time the plugin's batch and count its rows; a child span when tracing."""
        rows = len(next(iter(inputs.values()))) if inputs else 0
        metrics = self.telemetry.metrics
        tracer = self.telemetry.tracer
        span = tracer.start_predict(self.plugin_name, rows) if tracer is not None else None
        started = time.perf_counter()
        try:
            return (yield)
        except BaseException as error:
            if span is not None and tracer is not None:
                tracer.fail(span, error)
            raise
        finally:
            if metrics is not None:
                metrics.predict_seconds.observe(time.perf_counter() - started)
                metrics.rows.observe(rows)
            if span is not None:
                span.end()


def wrapper_telemetry(
    model: str,
    version: str,
    plugin: str,
    device: str,
    *,
    metrics: bool,
    tracing: TracingSettings,
) -> WrapperTelemetry | None:
    """The telemetry ``ketch serve`` asked for; None when it asked for none.

    Tracing needs the ``ketch[tracing]`` extra (OpenTelemetry); without it, a
    request for tracing is a ValueError that says what to install.
    """
    if not metrics and not tracing.enabled:
        return None
    call_tracer = None
    if tracing.enabled:
        try:
            from ketch.telemetry.tracing import Tracing
            from ketch.telemetry.wrapper_tracing import CallTracer
        except ImportError as error:
            raise ValueError(
                f"tracing is on but OpenTelemetry is not installed ({error}); "
                "pip install 'ketch[tracing]'"
            ) from None
        traced = Tracing(tracing, attributes={"ketch.model": model, "ketch.version": version})
        call_tracer = CallTracer(traced, model, version)
    wrapper_metrics = None
    if metrics:
        from ketch.telemetry.wrapper_metrics import WrapperMetrics

        wrapper_metrics = WrapperMetrics(model, version, plugin, device)
    return WrapperTelemetry(
        metrics=wrapper_metrics,
        tracer=call_tracer,
    )
