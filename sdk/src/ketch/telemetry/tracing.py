"""OpenTelemetry tracing for Ketch processes: a tracer provider, its sampler, and W3C context.

Each process that traces owns a :class:`Tracing`: its own tracer provider (never
the global one, so that several gateways or wrappers in one process, as in the
tests, keep their spans apart), a batch span processor, and the exporter its
settings name. Trace context crosses processes as W3C ``traceparent`` headers:
HTTP headers into the gateway, gRPC metadata from the gateway to ``ketch serve``.

Sampling is decided once per trace, where it starts, and followed downstream:
a span with a parent follows the parent's decision; a batch span, which has no
parent but links to the requests it served, is recorded when any of them is. A
new trace is started only when :meth:`Tracing.starts_trace` says so (by the
configured ratio), before any span is made: a request that is not sampled costs
no span at all, which keeps tracing cheap at low ratios.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from ketch.telemetry.settings import TracingSettings
from ketch.version import __version__

__all__ = ["DiscardingExporter", "LinkedRequestSampler", "Tracing"]

_PROPAGATOR = TraceContextTextMapPropagator()
TRACER_NAME = "ketch"


class DiscardingExporter(SpanExporter):
    """Accepts every span and keeps none: spans are made and propagated, not sent."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Drop the spans."""
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


class LinkedRequestSampler(Sampler):
    """A new trace's sampler: a span that links to others is recorded when one of them is.

    A batch span starts a trace of its own and links to the request spans it
    served; recording it whenever one of them is recorded keeps every sampled
    request's batch in view, whatever the ratio. Any other new trace was already
    decided on (:meth:`Tracing.starts_trace`) by whoever starts it, and is recorded.
    """

    def should_sample(  # noqa: PLR0917 (OpenTelemetry's Sampler signature)
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        """Sampled when a link is sampled, or when there is none (the caller decided)."""
        sampled = not links or any(link.context.trace_flags.sampled for link in links)
        return SamplingResult(Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP, attributes)

    def get_description(self) -> str:
        """How it decides."""
        return "LinkedRequestSampler"


def _exporter(settings: TracingSettings) -> SpanExporter:
    if settings.exporter == "console":
        return ConsoleSpanExporter(service_name=settings.service_name)
    if settings.exporter == "none":
        return DiscardingExporter()
    if settings.protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=settings.endpoint)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter(endpoint=settings.endpoint)


class Tracing:
    """One process's tracer: spans go through a batch processor to the exporter.

    :param exporter: replaces the one the settings name (the tests read spans
        back with the SDK's in-memory exporter).
    :param attributes: resource attributes besides ``service.name``.
    """

    def __init__(
        self,
        settings: TracingSettings,
        *,
        exporter: SpanExporter | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        resource = Resource.create(
            {
                "service.name": settings.service_name,
                "service.version": __version__,
                **(attributes or {}),
            }
        )
        self.provider = TracerProvider(
            sampler=ParentBased(root=LinkedRequestSampler()),
            resource=resource,
            shutdown_on_exit=False,
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(settings)))
        self.tracer: trace.Tracer = self.provider.get_tracer(TRACER_NAME, __version__)
        self._ratio = settings.sample_ratio
        self._draw = random.Random().random

    def starts_trace(self) -> bool:
        """Whether to trace a request that arrived without a trace context (by the ratio)."""
        return self._ratio >= 1.0 or self._draw() < self._ratio

    @staticmethod
    def extract(carrier: Mapping[str, str]) -> Context:
        """The trace context a caller sent (``traceparent``, ``tracestate``), else an empty one."""
        return _PROPAGATOR.extract(carrier)

    @staticmethod
    def extract_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> Context | None:
        """The trace context in gRPC metadata; None when there is none."""
        carrier = {
            key: value
            for key, value in metadata
            if key in _PROPAGATOR.fields and isinstance(value, str)
        }
        return _PROPAGATOR.extract(carrier) if carrier else None

    @staticmethod
    def inject(span: trace.Span) -> tuple[tuple[str, str], ...]:
        """The ``traceparent`` (and ``tracestate``) that carry ``span``'s context, as metadata."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return tuple(carrier.items())

    def flush(self, timeout_ms: int = 30_000) -> bool:
        """Export the spans ended so far; whether it finished in time."""
        return self.provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Export what is left and stop."""
        self.provider.shutdown()
