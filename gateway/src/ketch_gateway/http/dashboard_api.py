"""``/dashboard``: a live page of the gateway, and the JSON document it polls.

The page (``/dashboard``, with its script and style sheet) is static and served
from the package: no build step, nothing fetched from elsewhere. Its data
(``/dashboard/data``) is guarded by ``[gateway] dashboard``: ``token`` (the
default) asks for the admin token, since the page shows what the admin API
guards (replica addresses, what the policies learnt) and error messages that
can quote clients' input; ``open`` serves it to anyone who reaches the gateway
(for a private network, or behind a proxy that authenticates); ``off`` serves
no dashboard at all.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ketch_gateway.errors import Forbidden, NotFound
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.admin_api import authorised
from ketch_gateway.http.bodies import json_response
from ketch_gateway.observability.dashboard import dashboard_snapshot

__all__ = ["dashboard_routes"]

ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_HEADERS: Final = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def _asset(name: str) -> bytes:
    return (resources.files("ketch_gateway.http") / "dashboard" / name).read_bytes()


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    if gateway.settings.dashboard == "off":
        raise NotFound('the dashboard is off ([gateway] dashboard = "off")')
    return gateway


def _static(name: str) -> Route:
    body = _asset(name)
    media_type = ASSETS[name]
    path = "/dashboard" if name == "index.html" else f"/dashboard/{name}"

    async def serve(request: Request) -> Response:
        _gateway(request)
        return Response(body, media_type=media_type, headers=_HEADERS)

    return Route(path, serve, methods=["GET"])


async def dashboard_data(request: Request) -> Response:
    """``GET /dashboard/data``: the page's document."""
    gateway = _gateway(request)
    if gateway.settings.dashboard == "token":
        if not gateway.settings.admin_token:
            raise Forbidden(
                "the dashboard's data needs the admin token, and none is configured: set "
                'admin_token (or KETCH_ADMIN_TOKEN), or [gateway] dashboard = "open"'
            )
        authorised(request)
    return json_response(await dashboard_snapshot(gateway), headers=_HEADERS)


def dashboard_routes() -> list[Route]:
    """The page, its script and style, and its data."""
    return [
        *(_static(name) for name in ASSETS),
        Route("/dashboard/data", dashboard_data, methods=["GET"]),
    ]
