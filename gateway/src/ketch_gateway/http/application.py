"""The Starlette application: routes, error answers, and the gateway's life cycle."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from ketch_gateway.errors import ApiError, BadGateway
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.admin_api import admin_routes
from ketch_gateway.http.apps_api import app_routes
from ketch_gateway.http.bodies import json_response
from ketch_gateway.http.content_coding import ResponseCompression
from ketch_gateway.http.dashboard_api import dashboard_routes
from ketch_gateway.http.oip import oip_routes
from ketch_gateway.http.openapi import gateway_paths, openapi_document
from ketch_gateway.metrics import CONTENT_TYPE

__all__ = ["create_app"]

_log = logging.getLogger(__name__)

CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Content-Encoding",
    "Inference-Header-Content-Length",
]
CORS_RESPONSE_HEADERS = ["Inference-Header-Content-Length", "Retry-After", "X-Request-Id"]


def _request_id() -> str:
    return uuid.uuid4().hex[:16]


def _remember(request: Request, status: int, message: str) -> None:
    gateway: Gateway = request.app.state.gateway
    gateway.recent_errors.answered(request.method, request.url.path, status, message)


def _internal_answer(request: Request, request_id: str) -> Response:
    """A 500 that says only that something went wrong, and where the log has it."""
    message = f"internal error; the gateway's log has it under request id {request_id}"
    _remember(request, 500, message)
    return json_response(
        {"error": message, "request_id": request_id},
        status=500,
        headers={"X-Request-Id": request_id},
    )


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    if error.status == 500:
        request_id = _request_id()
        _log.error(
            "internal error %s on %s %s: %s", request_id, request.method, request.url.path, error
        )
        return _internal_answer(request, request_id)
    if isinstance(error, BadGateway) and error.detail is not None:
        request_id = _request_id()
        _log.warning("request %s: %s: %s", request_id, error.message, error.detail)
        message = (
            f"{error.message}; the gateway's log has its message under request id {request_id}"
        )
        _remember(request, error.status, message)
        return json_response(
            {"error": message, "request_id": request_id},
            status=error.status,
            headers={**error.headers, "X-Request-Id": request_id},
        )
    _remember(request, error.status, error.message)
    return json_response({"error": error.message}, status=error.status, headers=error.headers)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = error.detail
    if error.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        _remember(request, 405, message)
        return json_response(
            {"error": message}, status=405, headers={"Allow": _allowed_methods(request)}
        )
    _remember(request, error.status_code, str(message))
    return json_response({"error": message}, status=error.status_code, headers=error.headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at the request's path (routes are one per method)."""
    allowed: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            allowed |= route.methods or set()
    return ", ".join(sorted(allowed))


async def _internal_error(request: Request, error: Exception) -> Response:
    request_id = _request_id()
    _log.error(
        "internal error %s on %s %s",
        request_id,
        request.method,
        request.url.path,
        exc_info=error,
    )
    return _internal_answer(request, request_id)


async def _metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE)


async def _openapi(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return json_response(openapi_document(await gateway_paths(gateway)))


def _middleware(gateway: Gateway) -> list[Middleware]:
    """Compression of answers, and CORS when the configuration lists origins."""
    layers = [Middleware(ResponseCompression)]
    cors = gateway.settings.cors
    if cors is not None:
        layers.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors.allow_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=CORS_REQUEST_HEADERS,
                expose_headers=CORS_RESPONSE_HEADERS,
                allow_credentials=cors.allow_credentials,
                max_age=cors.max_age_s,
            ),
        )
    return layers


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
        middleware=_middleware(gateway),
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
