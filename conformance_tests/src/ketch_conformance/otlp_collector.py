"""A small OpenTelemetry collector in process: OTLP over gRPC in, spans kept in memory.

For tests and benchmarks that check what Ketch's processes export: a gateway or
``ketch serve`` pointed at :attr:`SpanCollector.endpoint` (``OTEL_EXPORTER_OTLP_
TRACES_ENDPOINT``, or the gateway's ``[tracing] endpoint``) sends its spans here
over the real OTLP exporter, and :meth:`SpanCollector.spans` reads them back,
each with its service's name. Needs the ``ketch-conformance[tracing]`` extra.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["CollectedSpan", "SpanCollector"]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@dataclass(frozen=True)
class CollectedSpan:
    """One span as it arrived: ids in hex, times in nanoseconds since the epoch."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()
    """(trace id, span id) of each linked span."""
    status_code: int = 0
    status_message: str = ""

    @property
    def duration_ms(self) -> float:
        """How long the span lasted, in milliseconds."""
        return (self.end_ns - self.start_ns) / 1e6


def _decoded(request: trace_service_pb2.ExportTraceServiceRequest) -> Iterator[CollectedSpan]:
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield CollectedSpan(
                    service=service,
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    kind=span.kind,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    attributes=_attributes(span.attributes),
                    links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                    status_code=span.status.code,
                    status_message=span.status.message,
                )


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collector: SpanCollector) -> None:
        self.collector = collector

    def Export(  # noqa: N802 (the OTLP service's method name)
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.collector.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class SpanCollector:
    """An OTLP/gRPC trace receiver on ``127.0.0.1`` (an ephemeral port by default)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._spans: list[CollectedSpan] = []
        self._received: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._lock = threading.Condition()
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp"))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(self), self._server
        )
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        self.endpoint = f"http://{host}:{self.port}"
        """What an OTLP gRPC exporter is pointed at."""
        self._server.start()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        """Keep an export that arrived (read into spans only when asked: receiving stays cheap)."""
        with self._lock:
            self._received.append(request)
            self._lock.notify_all()

    def _read(self) -> list[CollectedSpan]:
        """The spans, with those of the exports received since the last call read in."""
        for request in self._received:
            self._spans.extend(_decoded(request))
        self._received.clear()
        return self._spans

    def spans(self) -> list[CollectedSpan]:
        """Every span received so far."""
        with self._lock:
            return list(self._read())

    def clear(self) -> None:
        """Forget the spans received so far."""
        with self._lock:
            self._read().clear()

    def wait_for(
        self, found: Callable[[list[CollectedSpan]], bool], timeout: float = 30.0
    ) -> list[CollectedSpan]:
        """The spans, once ``found`` says they are complete; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not found(self._read()):
                left = deadline - time.monotonic()
                if left <= 0:
                    spans = self._read()
                    names = sorted({f"{s.service}:{s.name}" for s in spans})
                    raise TimeoutError(
                        f"the spans looked for did not arrive in {timeout:.0f} s "
                        f"({len(spans)} arrived: {', '.join(names) or 'none'})"
                    )
                self._lock.wait(left)
            return list(self._read())

    def close(self) -> None:
        """Stop receiving."""
        self._server.stop(grace=None).wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
