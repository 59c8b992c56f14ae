"""The trace of the request being handled, for the layers below the routes.

The tracing middleware puts each request's :class:`~ketch_gateway.observability.spans.RequestTrace`
in a context variable; the cache, the correction layer and the batcher read it
there instead of taking a tracer as a parameter. With tracing off the variable
stays None, and each layer's whole cost is one lookup of it. Nothing here
imports OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ketch_gateway.observability.spans import BatchTrace, QueueStay, RequestTrace

__all__ = ["REQUEST_TRACE", "current_trace", "start_batch"]

REQUEST_TRACE: ContextVar[RequestTrace | None] = ContextVar("ketch_request_trace", default=None)


def current_trace() -> RequestTrace | None:
    """The trace of the request this task works for; None when tracing is off."""
    return REQUEST_TRACE.get()


def start_batch(
    stays: Sequence[QueueStay | None], model: str, version: str, replica: str, rows: int
) -> BatchTrace | None:
    """The span of a batch sent to ``replica``, linked to its requests; None when none is traced."""
    traced = [stay for stay in stays if stay is not None]
    if not traced:
        return None
    return traced[0].request.start_batch(traced, model, version, replica, rows)
