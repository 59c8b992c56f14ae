"""The Starlette application: routes, error answers, and the gateway's life cycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ketch_gateway.errors import ApiError
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.admin_api import admin_routes
from ketch_gateway.http.apps_api import app_routes
from ketch_gateway.http.bodies import json_response
from ketch_gateway.http.dashboard_api import dashboard_routes
from ketch_gateway.http.oip import oip_routes
from ketch_gateway.http.openapi import openapi_document
from ketch_gateway.metrics import CONTENT_TYPE

__all__ = ["create_app"]

_log = logging.getLogger(__name__)


def _remember(request: Request, status: int, message: str) -> None:
    gateway: Gateway = request.app.state.gateway
    gateway.recent_errors.answered(request.method, request.url.path, status, message)


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    _remember(request, error.status, error.message)
    return json_response({"error": error.message}, status=error.status, headers=error.headers)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = error.detail
    if error.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    _remember(request, error.status_code, str(message))
    return json_response({"error": message}, status=error.status_code, headers=error.headers)


async def _internal_error(request: Request, error: Exception) -> Response:
    _log.exception("internal error on %s %s", request.method, request.url.path, exc_info=error)
    message = f"internal error: {type(error).__name__}: {error}"
    _remember(request, 500, message)
    return json_response({"error": message}, status=500)


async def _metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE)


async def _openapi(request: Request) -> Response:
    return json_response(openapi_document())


def create_app(gateway: Gateway, *, manage_lifecycle: bool = True) -> Starlette:
    """The application serving ``gateway``.

    With ``manage_lifecycle`` (for embedding in any ASGI server) the application's
    lifespan starts and stops the gateway; ``ketch gateway`` starts it itself first.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not manage_lifecycle:
            yield
            return
        try:
            await gateway.start()
        except BaseException:
            await gateway.stop()
            raise
        try:
            yield
        finally:
            await gateway.stop()

    routes = [
        *app_routes(),
        *oip_routes(),
        *admin_routes(),
        *dashboard_routes(),
        Route("/metrics", _metrics, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.gateway = gateway
    if gateway.tracing is not None:
        from ketch_gateway.observability.middleware import TracingMiddleware

        app.add_middleware(TracingMiddleware, tracing=gateway.tracing)
    return app
