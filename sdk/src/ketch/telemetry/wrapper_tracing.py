"""The spans of a ``ketch serve`` process: one per traced call, one per plugin batch.

A ModelInfer or Observe call gets a SERVER span, the child of the span whose
context came in the call's metadata (the gateway's batch span) when one came, and
recorded as that caller decided; a call without a context starts a trace at the
wrapper's own ratio (which is 0 for the wrappers a gateway starts: the gateway
decides). The plugin's ``ketch_batch_predict`` is a child of a recorded call
span. Both carry the model, the version, the rows and the replica (this
wrapper's address).
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ketch.telemetry.tracing import Tracing

__all__ = ["CallTracer", "TracedCall"]


def _rows(request: Any) -> int | None:
    inputs = getattr(request, "inputs", None)
    if inputs and inputs[0].shape:
        return int(inputs[0].shape[0])
    return None


class TracedCall:
    """An open SERVER span, current in this thread until :meth:`end`."""

    __slots__ = ("_token", "span")

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self._token = context_api.attach(trace.set_span_in_context(span))

    def end(self, code: str, message: str | None) -> None:
        """Close the span with the call's gRPC status."""
        context_api.detach(self._token)
        span = self.span
        span.set_attribute("rpc.grpc.status_code", grpc.StatusCode[code].value[0])
        if code != "OK":
            span.set_status(Status(StatusCode.ERROR, f"{code}: {message or ''}"))
        span.end()


class CallTracer:
    """Starts the spans of one wrapper's calls and plugin batches."""

    def __init__(self, tracing: Tracing, model: str, version: str) -> None:
        self.tracing = tracing
        self.tracer = tracing.tracer
        self.model = model
        self.version = version
        self.replica = ""

    def start_call(
        self, service: str, method: str, request: Any, context: grpc.ServicerContext
    ) -> TracedCall | None:
        """A SERVER span for a call, under the caller's trace context; None when not traced."""
        parent = Tracing.extract_metadata(context.invocation_metadata() or ())
        if parent is None and not self.tracing.starts_trace():
            return None
        attributes: dict[str, Any] = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": method,
            "ketch.model": self.model,
            "ketch.version": self.version,
            "ketch.replica": self.replica,
        }
        rows = _rows(request)
        if rows is not None:
            attributes["ketch.batch.rows"] = rows
        span = self.tracer.start_span(
            f"{service}/{method}", context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        return TracedCall(span) if span.is_recording() else None

    def start_predict(self, plugin: str, rows: int) -> trace.Span | None:
        """The span of one ``ketch_batch_predict``, a child of the call's; None when untraced."""
        if not trace.get_current_span().is_recording():
            return None
        return self.tracer.start_span(
            "ketch_batch_predict",
            attributes={
                "ketch.plugin": plugin,
                "ketch.model": self.model,
                "ketch.version": self.version,
                "ketch.replica": self.replica,
                "ketch.batch.rows": rows,
            },
        )

    @staticmethod
    def fail(span: trace.Span, error: BaseException) -> None:
        """Mark a span failed by ``error``."""
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
