"""The gateway's spans: a request's, its children, and the batch spans that link requests.

A traced request gets a SERVER span (from the tracing middleware) and children
for what it went through: ``ketch.cache.lookup``, ``ketch.policy.select`` and
``ketch.policy.combine``, ``ketch.queue.wait`` and ``ketch.batch.call`` (its
share of the batch: from send to answer). A batch that serves traced requests is
one span of its own, ``ketch.batch``, that links to each of their spans, with its
rows, requests and replica; its context travels to the wrapper in the call's
gRPC metadata. Only sampled requests are traced at all (the middleware decides),
so a batch of untraced requests makes no span and sends no context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from ketch.telemetry.tracing import Tracing

__all__ = ["BatchTrace", "QueueStay", "RequestTrace"]


def _fail(span: trace.Span, message: str) -> None:
    span.set_status(Status(StatusCode.ERROR, message))


class RequestTrace:
    """A traced (sampled) request's span."""

    __slots__ = ("context", "span", "tracer")

    def __init__(self, tracer: trace.Tracer, span: trace.Span) -> None:
        self.tracer = tracer
        self.span = span
        self.context = trace.set_span_in_context(span)
        """The context whose current span is the request's (the parent of its children)."""

    def child(self, name: str, attributes: dict[str, Any] | None = None) -> trace.Span:
        """A child span of the request, started now."""
        return self.tracer.start_span(name, context=self.context, attributes=attributes)

    def stay(self, model: str, version: str, rows: int, *, queued: bool = True) -> QueueStay:
        """The request's rows enter a model version's queue (``queued``) or go straight out."""
        wait = None
        if queued:
            wait = self.child(
                "ketch.queue.wait",
                {"ketch.model": model, "ketch.version": version, "ketch.rows": rows},
            )
        return QueueStay(self, wait)

    def start_batch(
        self, stays: Sequence[QueueStay], model: str, version: str, replica: str, rows: int
    ) -> BatchTrace:
        """The batch span for ``stays``: see :func:`.trace_context.start_batch`."""
        return BatchTrace(self.tracer, stays, model, version, replica, rows)


class QueueStay:
    """A request's time in one queue (``ketch.queue.wait``) and its batch (``ketch.batch.call``)."""

    __slots__ = ("call", "request", "wait")

    def __init__(self, request: RequestTrace, wait: trace.Span | None) -> None:
        self.request = request
        self.wait = wait
        self.call: trace.Span | None = None

    def left_queue(self, reason: str | None = None) -> None:
        """The request left the queue: taken into a batch, or (``reason``) given up on."""
        if self.wait is not None:
            if reason is not None:
                _fail(self.wait, reason)
            self.wait.end()
            self.wait = None


class BatchTrace:
    """The span of one batch, and the ``traceparent`` that carries it to the wrapper."""

    __slots__ = ("metadata", "span", "stays")

    def __init__(  # noqa: PLR0917 (the batch's facts, as the batcher has them)
        self,
        tracer: trace.Tracer,
        stays: Sequence[QueueStay],
        model: str,
        version: str,
        replica: str,
        rows: int,
    ) -> None:
        links = [Link(stay.request.span.get_span_context()) for stay in stays]
        attributes: dict[str, str | int] = {
            "ketch.model": model,
            "ketch.version": version,
            "ketch.replica": replica,
            "ketch.batch.rows": rows,
            "ketch.batch.requests": len(stays),
        }
        self.span = tracer.start_span(
            "ketch.batch",
            context=Context(),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=links,
        )
        self.metadata = Tracing.inject(self.span)
        self.stays = stays
        batch_link = [Link(self.span.get_span_context())]
        for stay in stays:
            stay.left_queue()
            stay.call = stay.request.tracer.start_span(
                "ketch.batch.call",
                context=stay.request.context,
                attributes=attributes,
                links=batch_link,
            )

    def end(self, error: str | None = None) -> None:
        """The replica answered (or failed with ``error``)."""
        for stay in self.stays:
            if stay.call is not None:
                if error is not None:
                    _fail(stay.call, error)
                stay.call.end()
                stay.call = None
        if error is not None:
            _fail(self.span, error)
        self.span.end()
