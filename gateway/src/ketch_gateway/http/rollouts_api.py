"""The admin API of rollouts: splits, shadows and canaries, behind the admin token.

Each change goes through :meth:`~ketch_gateway.gateway.Gateway.change`, like every
admin change: recorded, replayed on restart, applied by every gateway on the store.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ketch_gateway.errors import BadRequest
from ketch_gateway.http.admin_api import _authorised, _body, _change
from ketch_gateway.http.bodies import json_response
from ketch_gateway.rollouts.phase import ABORTED

__all__ = ["rollout_routes"]


def _model(request: Request) -> str:
    name: str = request.path_params["model"]
    return name


async def list_rollouts(request: Request) -> Response:
    """``GET /admin/rollouts``: every model's split, shadow and rollout."""
    gateway = _authorised(request)
    return json_response({"models": await gateway.rollouts.describe_all()})


async def rollout_status(request: Request) -> Response:
    """``GET /admin/models/{model}/rollout``: one model's split, shadow and rollout."""
    gateway = _authorised(request)
    return json_response(await gateway.rollouts.describe(_model(request)))


async def start_rollout(request: Request) -> Response:
    """``POST /admin/models/{model}/rollout`` with the rollout's settings."""
    gateway = _authorised(request)
    settings = await _body(request, gateway)
    fields = {
        "model": _model(request),
        "rollout": settings,
        "id": uuid.uuid4().hex[:12],
        "at": time.time(),
    }
    return await _change(request, "start_rollout", fields)


async def pause_rollout(request: Request) -> Response:
    """``POST /admin/models/{model}/rollout/pause``."""
    return await _change(request, "pause_rollout", {"model": _model(request)})


async def resume_rollout(request: Request) -> Response:
    """``POST /admin/models/{model}/rollout/resume``."""
    return await _change(request, "resume_rollout", {"model": _model(request), "at": time.time()})


async def abort_rollout(request: Request) -> Response:
    """``POST /admin/models/{model}/rollout/abort`` with an optional ``{"reason": ...}``."""
    gateway = _authorised(request)
    body = await _body(request, gateway) if await request.body() else {}
    reason = body.get("reason", "aborted by an admin")
    if not isinstance(reason, str) or not reason:
        raise BadRequest("reason: expected a non-empty string")
    fields: dict[str, Any] = {
        "model": _model(request),
        "outcome": ABORTED,
        "reason": reason,
        "at": time.time(),
    }
    return await _change(request, "end_rollout", fields)


async def set_split(request: Request) -> Response:
    """``PUT /admin/models/{model}/split`` with ``{"split": {"1": 0.9, "2": 0.1}}``."""
    gateway = _authorised(request)
    body = await _body(request, gateway)
    if set(body) != {"split"}:
        raise BadRequest('expected {"split": {VERSION: SHARE, ...}}')
    return await _change(request, "set_split", {"model": _model(request), "split": body["split"]})


async def clear_split(request: Request) -> Response:
    """``DELETE /admin/models/{model}/split``: the current version takes all traffic."""
    return await _change(request, "set_split", {"model": _model(request), "split": None})


async def set_shadow(request: Request) -> Response:
    """``PUT /admin/models/{model}/shadow`` with ``{"version": "2", "share": 0.2}``."""
    gateway = _authorised(request)
    body = await _body(request, gateway)
    return await _change(request, "set_shadow", {"model": _model(request), "shadow": body})


async def clear_shadow(request: Request) -> Response:
    """``DELETE /admin/models/{model}/shadow``: stop mirroring."""
    return await _change(request, "set_shadow", {"model": _model(request), "shadow": None})


def rollout_routes() -> list[Route]:
    """The routes."""
    base = "/admin/models/{model}"
    return [
        Route("/admin/rollouts", list_rollouts, methods=["GET"]),
        Route(base + "/rollout", rollout_status, methods=["GET"]),
        Route(base + "/rollout", start_rollout, methods=["POST"]),
        Route(base + "/rollout/pause", pause_rollout, methods=["POST"]),
        Route(base + "/rollout/resume", resume_rollout, methods=["POST"]),
        Route(base + "/rollout/abort", abort_rollout, methods=["POST"]),
        Route(base + "/split", set_split, methods=["PUT"]),
        Route(base + "/split", clear_split, methods=["DELETE"]),
        Route(base + "/shadow", set_shadow, methods=["PUT"]),
        Route(base + "/shadow", clear_shadow, methods=["DELETE"]),
    ]
