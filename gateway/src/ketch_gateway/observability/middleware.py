"""The tracing middleware: a SERVER span for each HTTP request, under the caller's trace.

A pure ASGI middleware, installed only when tracing is on. It honours an incoming
W3C ``traceparent`` (the caller's sampling decision included); a request without
one is traced at the configured ratio, decided before any span is made, so that
the others cost a header scan and a random draw. A traced request's span is named
after the route's template (``POST /apps/{app}/predict``: a bounded set of
names), records the status, and is made current for the layers below
(:mod:`ketch_gateway.observability.trace_context`). Scrapes, health checks and
the dashboard's polls are not traced.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ketch.telemetry.tracing import Tracing
from ketch_gateway.observability.spans import RequestTrace
from ketch_gateway.observability.trace_context import REQUEST_TRACE

__all__ = ["UNTRACED_PREFIXES", "TracingMiddleware"]

UNTRACED_PREFIXES: Final = ("/metrics", "/dashboard", "/v2/health", "/favicon")
_CONTEXT_HEADERS: Final = (b"traceparent", b"tracestate")


class TracingMiddleware:
    """Traces the HTTP requests of ``app`` with ``tracing``'s tracer."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing
        self.tracer = tracing.tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside its span."""
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(UNTRACED_PREFIXES):
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _CONTEXT_HEADERS
        }
        if not carrier and not self.tracing.starts_trace():
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        span = self.tracer.start_span(
            method,
            context=Tracing.extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        if not span.is_recording():  # the caller decided against it
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = REQUEST_TRACE.set(RequestTrace(self.tracer, span))
        try:
            await self.app(scope, receive, send_status)
        finally:
            REQUEST_TRACE.reset(token)
            template = getattr(scope.get("route"), "path", None)
            if template:
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            span.end()
