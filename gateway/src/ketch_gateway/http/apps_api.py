"""The Apps API: ``POST /apps/{app}/predict`` and ``POST /apps/{app}/feedback``."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ketch_gateway.correction.app import App
from ketch_gateway.correction.queries import Feedback, Query
from ketch_gateway.errors import BadRequest, InvalidValue
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.api_keys import require_api_key
from ketch_gateway.http.bodies import json_response, read_json_object
from ketch_gateway.metrics import bounded_target
from ketch_gateway.observability.trace_context import current_trace

__all__ = ["app_routes"]

PREDICT_KEYS = {"input", "inputs", "user", "cache_report"}
FEEDBACK_KEYS = {"input", "label", "user", "query_id"}


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _user(body: dict[str, Any]) -> str | None:
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        raise BadRequest("user: expected a non-empty string")
    return user


def _check_keys(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(
            f"unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}"
        )


async def _read(
    request: Request, gateway: Gateway, allowed: set[str]
) -> tuple[App, dict[str, Any]]:
    app = gateway.apps.find(request.path_params["app"])
    require_api_key(request, app.config.api_keys, app.name)
    body = await read_json_object(request, gateway.settings.max_body_bytes)
    _check_keys(body, allowed)
    return app, body


def _target(request: Request, gateway: Gateway) -> str:
    return bounded_target(request.path_params["app"], gateway.apps)


async def predict(request: Request) -> Response:
    """Answer one row (``input``) or several (``inputs``) within the app's latency objective."""
    gateway = _gateway(request)
    arrived = asyncio.get_running_loop().time()
    with gateway.metrics.observe("app", _target(request, gateway)):
        app, body = await _read(request, gateway, PREDICT_KEYS)
        if ("input" in body) == ("inputs" in body):
            raise BadRequest('send one row as "input" or a list of rows as "inputs" (not both)')
        single = "input" in body
        report = body.get("cache_report", False)
        if not isinstance(report, bool):
            raise BadRequest("cache_report: expected true or false")
        if single:
            rows = [body["input"]]
        else:
            rows = body["inputs"]
            if not isinstance(rows, list) or not rows:
                raise BadRequest("inputs: expected a non-empty list of rows")
        try:
            answer = await app.predict(Query(rows, _user(body), arrived))
        except InvalidValue as error:
            raise error.within("input" if single else "inputs") from None
        if answer.default:
            gateway.metrics.defaults.labels(app.name).inc()
        traced = current_trace()
        if traced is not None:
            traced.span.set_attributes(
                {
                    "ketch.app": app.name,
                    "ketch.query_id": answer.query_id,
                    "ketch.default": answer.default,
                }
            )
        result: dict[str, Any] = {
            ("output" if single else "outputs"): answer.rows[0] if single else answer.rows,
            "default": answer.default,
            "query_id": answer.query_id,
        }
        if answer.explanation:
            result["explanation"] = answer.explanation
        if answer.contributors is not None:
            result["models"] = answer.contributors
        if answer.confidence is not None:
            result["confidence"] = answer.confidence[0] if single else answer.confidence
        if report:
            sources = answer.sources or ["uncached"] * len(rows)
            result["cache"] = sources[0] if single else sources
        return json_response(result)


async def feedback(request: Request) -> Response:
    """Record a labelled example for the app (the correction layer learns from these)."""
    gateway = _gateway(request)
    with gateway.metrics.observe("feedback", _target(request, gateway)):
        app, body = await _read(request, gateway, FEEDBACK_KEYS)
        for key in ("input", "label"):
            if key not in body or body[key] is None:
                raise BadRequest(f"{key}: missing")
        query_id = body.get("query_id")
        if query_id is not None and not isinstance(query_id, str):
            raise BadRequest("query_id: expected a string")
        example = Feedback(body["input"], body["label"], _user(body), query_id)
        try:
            receipt = await app.feedback(example)
        except InvalidValue as error:
            raise (error if error.location[:1] == ("label",) else error.within("input")) from None
        answer: dict[str, Any] = {
            "recorded": True,
            "feedback_id": receipt.feedback_id,
            "prediction": receipt.prediction,
        }
        if receipt.forwarded is not None:
            answer["forwarded"] = receipt.forwarded
        return json_response(answer)


def app_routes() -> list[Route]:
    """The routes."""
    return [
        Route("/apps/{app}/predict", predict, methods=["POST"]),
        Route("/apps/{app}/feedback", feedback, methods=["POST"]),
    ]
