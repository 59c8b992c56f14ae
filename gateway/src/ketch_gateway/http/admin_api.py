"""The admin API, behind a bearer token: models, versions, replicas, apps and links.

Every change is recorded in the state store, so a restarted gateway keeps it. A client
address that fails to authenticate too often is throttled
(:mod:`~ketch_gateway.control.auth_throttle`).
"""

from __future__ import annotations

import hmac
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ketch_gateway.errors import Forbidden, TooManyRequests, Unauthorized
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.bodies import json_response, read_json_object

__all__ = ["admin_routes", "authorised"]


def _authorised(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    token = gateway.settings.admin_token
    if not token:
        raise Forbidden("the admin API is disabled: set admin_token (or KETCH_ADMIN_TOKEN)")
    address = request.client.host if request.client else "unknown"
    throttle = gateway.auth_throttle
    wait = math.ceil(throttle.wait_s(address))
    if wait > 0:
        gateway.metrics.admin_auth_failures.labels("throttled").inc()
        raise TooManyRequests(
            f"too many failed authentications from {address}; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    try:
        _check_token(request, token)
    except (Unauthorized, Forbidden):
        throttle.failed(address)
        gateway.metrics.admin_auth_failures.labels("refused").inc()
        raise
    throttle.succeeded(address)
    return gateway


def _check_token(request: Request, token: str) -> None:
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthorized(
            "missing Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
        )
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized(
            "expected Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Forbidden("wrong admin token")


def authorised(request: Request) -> Gateway:
    """The gateway, once the request has shown the admin token (401 or 403 otherwise)."""
    return _authorised(request)


async def _body(request: Request, gateway: Gateway) -> dict[str, Any]:
    return await read_json_object(request, gateway.settings.max_body_bytes)


async def _change(request: Request, operation: str, fields: dict[str, Any]) -> Response:
    gateway = _authorised(request)
    with gateway.metrics.observe("admin", operation):
        result = await gateway.change(operation, fields)
        return json_response(result)


async def list_models(request: Request) -> Response:
    """``GET /admin/models``."""
    gateway = _authorised(request)
    return json_response({"models": [m.describe() for m in gateway.models.values()]})


async def add_model(request: Request) -> Response:
    """``POST /admin/models`` with a model as in the configuration file."""
    gateway = _authorised(request)
    return await _change(request, "add_model", await _body(request, gateway))


async def remove_model(request: Request) -> Response:
    """``DELETE /admin/models/{model}`` (refused while an app links it)."""
    return await _change(request, "remove_model", {"model": request.path_params["model"]})


async def add_version(request: Request) -> Response:
    """``POST /admin/models/{model}/versions`` with a version as in the configuration file."""
    gateway = _authorised(request)
    body = await _body(request, gateway)
    return await _change(request, "add_version", {**body, "model": request.path_params["model"]})


async def set_version(request: Request) -> Response:
    """``PUT /admin/models/{model}/version`` with ``{"version": ...}``: roll out or back."""
    gateway = _authorised(request)
    body = await _body(request, gateway)
    fields = {"model": request.path_params["model"], "version": body.get("version")}
    return await _change(request, "set_version", fields)


def _replica_fields(request: Request) -> dict[str, Any]:
    return {"model": request.path_params["model"], "version": request.path_params["version"]}


async def add_replica(request: Request) -> Response:
    """``POST .../versions/{version}/replicas`` with ``{"address": "host:port"}``."""
    gateway = _authorised(request)
    body = await _body(request, gateway)
    return await _change(
        request, "add_replica", {**_replica_fields(request), "address": body.get("address")}
    )


async def scale(request: Request) -> Response:
    """``PUT .../versions/{version}/replicas`` with ``{"count": N}``: N managed wrappers."""
    gateway = _authorised(request)
    body = await _body(request, gateway)
    return await _change(request, "scale", {**_replica_fields(request), "count": body.get("count")})


async def remove_replica(request: Request) -> Response:
    """``DELETE .../versions/{version}/replicas/{address}``."""
    fields = {**_replica_fields(request), "address": request.path_params["address"]}
    return await _change(request, "remove_replica", fields)


async def list_apps(request: Request) -> Response:
    """``GET /admin/apps``."""
    gateway = _authorised(request)
    return json_response({"apps": [a.describe() for a in gateway.apps.values()]})


async def app_state(request: Request) -> Response:
    """``GET /admin/apps/{app}/state[?user=U]``: the correction policy's state (JSON)."""
    gateway = _authorised(request)
    app = gateway.apps.find(request.path_params["app"])
    user = request.query_params.get("user", "")
    state = await gateway.store.load_policy_state(app.name, user)
    return json_response(
        {"app": app.name, "user": user, "policy": app.config.policy, "state": state}
    )


async def add_app(request: Request) -> Response:
    """``POST /admin/apps`` with an app as in the configuration file."""
    gateway = _authorised(request)
    return await _change(request, "add_app", await _body(request, gateway))


async def change_app(request: Request) -> Response:
    """``PUT /admin/apps/{app}`` with the app as in the configuration file: new settings."""
    gateway = _authorised(request)
    body = await _body(request, gateway)
    return await _change(request, "change_app", {**body, "app": request.path_params["app"]})


async def remove_app(request: Request) -> Response:
    """``DELETE /admin/apps/{app}``."""
    return await _change(request, "remove_app", {"app": request.path_params["app"]})


async def link(request: Request) -> Response:
    """``POST /admin/apps/{app}/links`` with ``{"model": ...}``."""
    gateway = _authorised(request)
    body = await _body(request, gateway)
    return await _change(
        request, "link", {"app": request.path_params["app"], "model": body.get("model")}
    )


async def unlink(request: Request) -> Response:
    """``DELETE /admin/apps/{app}/links/{model}``."""
    fields = {"app": request.path_params["app"], "model": request.path_params["model"]}
    return await _change(request, "unlink", fields)


def admin_routes() -> list[Route]:
    """The routes."""
    versions = "/admin/models/{model}/versions/{version}/replicas"
    return [
        Route("/admin/models", list_models, methods=["GET"]),
        Route("/admin/models", add_model, methods=["POST"]),
        Route("/admin/models/{model}", remove_model, methods=["DELETE"]),
        Route("/admin/models/{model}/versions", add_version, methods=["POST"]),
        Route("/admin/models/{model}/version", set_version, methods=["PUT"]),
        Route(versions, add_replica, methods=["POST"]),
        Route(versions, scale, methods=["PUT"]),
        Route(versions + "/{address}", remove_replica, methods=["DELETE"]),
        Route("/admin/apps", list_apps, methods=["GET"]),
        Route("/admin/apps", add_app, methods=["POST"]),
        Route("/admin/apps/{app}", change_app, methods=["PUT"]),
        Route("/admin/apps/{app}", remove_app, methods=["DELETE"]),
        Route("/admin/apps/{app}/state", app_state, methods=["GET"]),
        Route("/admin/apps/{app}/links", link, methods=["POST"]),
        Route("/admin/apps/{app}/links/{model}", unlink, methods=["DELETE"]),
    ]
