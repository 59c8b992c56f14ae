"""``GET /openapi.json``: the Apps, Open Inference Protocol and admin APIs, described.

The generic paths describe any app or model; :func:`openapi_document` adds, for
each app and model of this gateway whose signature is known, its own paths with
the exact rows it takes (:mod:`ketch_gateway.http.openapi_models`).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ketch import Signature
from ketch.datatypes import DATATYPES
from ketch.version import __version__
from ketch_gateway.errors import ApiError
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.openapi_models import feedback_body, infer_body, predict_body
from ketch_gateway.metrics import CONTENT_TYPE
from ketch_gateway.serving.models import ModelVersion

__all__ = ["gateway_paths", "openapi_document"]

_ERROR = {
    "description": "The problem, named",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}},
            }
        }
    },
}
_NAME = {"type": "string", "minLength": 1}
_BODY_ERRORS = (400, 413, 415)
"""What any operation that reads a body may answer: malformed, too large, not JSON."""


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _one(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A body of one required field."""
    return {"type": "object", "required": [key], "properties": {key: schema}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(
    summary: str,
    *,
    tag: str,
    body: dict[str, Any] | None = None,
    answer: dict[str, Any] | None = None,
    errors: tuple[int, ...] = (400, 404),
    admin: bool = False,
    binary_answer: bool = False,
) -> dict[str, Any]:
    answered = _json(answer or {"type": "object"})
    if binary_answer:
        answered["content"]["application/octet-stream"] = {
            "schema": {"type": "string", "format": "binary"}
        }
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            "200": {"description": "OK", **answered},
            **{str(code): _ERROR for code in errors},
        },
    }
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body)}
        operation["responses"].update({str(code): _ERROR for code in _BODY_ERRORS})
    if admin:
        operation["security"] = [{"bearer": []}]
        operation["responses"].update({"401": _ERROR, "403": _ERROR, "429": _ERROR})
    return operation


_ADDRESS = r"^.+:[0-9]{1,5}$"
_PREDICT_ERRORS = (401, 403, 404, 409, 502, 503, 504)
_FEEDBACK_ERRORS = (401, 403, 404, 409, 502, 503, 504)
_INFER_ERRORS = (404, 502, 503, 504)

_SCHEMAS: dict[str, Any] = {
    "Row": {
        "description": "A number, a nested list of numbers, a string, or (for a model with "
        "several inputs) an object of those by input name"
    },
    "PredictRequest": {
        "type": "object",
        "oneOf": [{"required": ["input"]}, {"required": ["inputs"]}],
        "properties": {
            "input": _ref("Row"),
            "inputs": {"type": "array", "items": _ref("Row"), "minItems": 1},
            "user": _NAME,
            "cache_report": {"type": "boolean"},
        },
        "additionalProperties": False,
        "description": "Exactly one of input and inputs.",
    },
    "PredictResponse": {
        "type": "object",
        "required": ["default", "query_id"],
        "properties": {
            "output": {},
            "outputs": {"type": "array"},
            "default": {"type": "boolean"},
            "explanation": {"type": "string"},
            "query_id": {"type": "string"},
        },
    },
    "FeedbackRequest": {
        "type": "object",
        "required": ["input", "label"],
        "properties": {
            "input": _ref("Row"),
            "label": {"not": {"type": "null"}},
            "user": _NAME,
            "query_id": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": _NAME,
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 64},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "parameters": {"type": "object"},
            "data": {"type": "array"},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": _ref("Tensor"), "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {"type": "object", "required": ["name"], "properties": {"name": _NAME}},
            },
        },
    },
    "InferResponse": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("Tensor")},
        },
    },
    "Version": {
        "type": "object",
        "required": ["version"],
        "properties": {
            "version": _NAME,
            "addresses": {"type": "array", "items": {"type": "string", "pattern": _ADDRESS}},
            "plugin": _NAME,
            "path": _NAME,
            "device": _NAME,
            "count": {"type": "integer", "minimum": 0},
            "options": {"type": "object", "additionalProperties": {"type": "string"}},
            "max_batch": {"type": "integer", "minimum": 1},
        },
    },
    "Model": {
        "type": "object",
        "required": ["name", "versions"],
        "properties": {
            "name": _NAME,
            "version": _NAME,
            "versions": {"type": "array", "items": _ref("Version"), "minItems": 1},
            "timeout_ms": {"type": "number", "exclusiveMinimum": 0},
        },
    },
    "App": {
        "type": "object",
        "required": ["name", "models", "latency_objective_ms"],
        "properties": {
            "name": _NAME,
            "models": {"type": "array", "items": _NAME},
            "latency_objective_ms": {"type": "number", "exclusiveMinimum": 0},
            "policy": {"type": "string", "enum": ["single"]},
            "default_output": {},
        },
    },
}


def openapi_document(own_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``own_paths`` (:func:`gateway_paths`) are added to it."""
    model_path = "/v2/models/{model}"
    replicas = "/admin/models/{model}/versions/{version}/replicas"
    paths: dict[str, Any] = {
        "/apps/{app}/predict": {
            "post": _operation(
                "Predict one row or several within the app's latency objective",
                tag="apps",
                body=_ref("PredictRequest"),
                answer=_ref("PredictResponse"),
                errors=_PREDICT_ERRORS,
            )
        },
        "/apps/{app}/feedback": {
            "post": _operation(
                "Record a labelled example",
                tag="apps",
                body=_ref("FeedbackRequest"),
                errors=_FEEDBACK_ERRORS,
            )
        },
        "/v2": {"get": _operation("Server metadata", tag="inference", errors=())},
        "/v2/health/live": {"get": _operation("Liveness", tag="inference", errors=())},
        "/v2/health/ready": {
            "get": _operation("Readiness (503 when not ready)", tag="inference", errors=(503,))
        },
        model_path: {"get": _operation("Model metadata", tag="inference", errors=(404, 503))},
        model_path + "/ready": {
            "get": _operation("Model readiness", tag="inference", errors=(404, 503))
        },
        model_path + "/infer": {
            "post": _operation(
                "Inference (JSON, or binary tensors with Inference-Header-Content-Length)",
                tag="inference",
                body=_ref("InferRequest"),
                answer=_ref("InferResponse"),
                errors=_INFER_ERRORS,
                binary_answer=True,
            )
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "The Prometheus text format",
                        "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/dashboard": {
            "get": {
                "summary": "The live dashboard page (HTML; its data needs the admin token "
                'unless [gateway] dashboard = "open")',
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "The page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "404": _ERROR,
                },
            }
        },
        "/dashboard/data": {
            "get": _operation(
                "The dashboard's document: apps, models, replicas, caches, rates, recent errors",
                tag="operations",
                admin=True,
                errors=(404,),
            )
        },
        "/admin/models": {
            "get": _operation("List models", tag="admin", admin=True, errors=()),
            "post": _operation(
                "Add a model (422 or 502 with the wrapper's error when one does not start)",
                tag="admin",
                body=_ref("Model"),
                admin=True,
                errors=(400, 409, 422, 502),
            ),
        },
        "/admin/models/{model}": {
            "delete": _operation("Remove a model", tag="admin", admin=True, errors=(404, 409))
        },
        "/admin/models/{model}/versions": {
            "post": _operation(
                "Add a version (422 or 502 with the wrapper's error when one does not start)",
                tag="admin",
                body=_ref("Version"),
                admin=True,
                errors=(400, 404, 409, 422, 502),
            )
        },
        "/admin/models/{model}/version": {
            "put": _operation(
                "Set the current version (roll out or back)",
                tag="admin",
                body=_one("version", _NAME),
                admin=True,
            )
        },
        replicas: {
            "post": _operation(
                "Add an external replica",
                tag="admin",
                body=_one("address", {"type": "string", "pattern": _ADDRESS}),
                admin=True,
                errors=(400, 404, 409),
            ),
            "put": _operation(
                "Run N managed replicas (at most [admin] max_replicas)",
                tag="admin",
                body=_one("count", {"type": "integer", "minimum": 0}),
                admin=True,
                errors=(400, 404, 422, 502),
            ),
        },
        replicas + "/{address}": {
            "delete": _operation("Remove a replica", tag="admin", admin=True)
        },
        "/admin/apps": {
            "get": _operation("List apps", tag="admin", admin=True, errors=()),
            "post": _operation(
                "Add an app", tag="admin", body=_ref("App"), admin=True, errors=(400, 409)
            ),
        },
        "/admin/apps/{app}": {
            "put": _operation(
                "Change an app's settings (the whole app; its policy's state is kept)",
                tag="admin",
                body=_ref("App"),
                admin=True,
                errors=(400, 404),
            ),
            "delete": _operation("Remove an app", tag="admin", admin=True),
        },
        "/admin/apps/{app}/state": {
            "get": _operation(
                "The correction policy's state (query parameter user: one user's)",
                tag="admin",
                admin=True,
            )
        },
        "/admin/apps/{app}/links": {
            "post": _operation(
                "Link a model",
                tag="admin",
                body=_one("model", _NAME),
                admin=True,
                errors=(400, 404, 409),
            )
        },
        "/admin/apps/{app}/links/{model}": {
            "delete": _operation("Unlink a model", tag="admin", admin=True)
        },
    }
    version_path = model_path + "/versions/{version}"
    for suffix in ("", "/ready", "/infer"):
        paths[version_path + suffix] = copy.deepcopy(paths[model_path + suffix])
    for path, operations in paths.items():
        names = re.findall(r"{(\w+)}", path)
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in names
        ]
        for method, operation in operations.items():
            operations[method] = {**operation, "parameters": parameters} if names else operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ketch gateway", "version": __version__},
        "paths": {**paths, **(own_paths or {})},
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def _signature(version: ModelVersion) -> Signature | None:
    """The version's signature; None while no replica has told it."""
    try:
        return await version.require_signature()
    except ApiError:
        return None


async def _current_signature(gateway: Gateway, model: str) -> Signature | None:
    """The signature of the model's current version; None while unknown."""
    try:
        version = gateway.models.find(model).version()
    except ApiError:
        return None
    return await _signature(version)


def _infer_path(label: str, body: dict[str, Any]) -> dict[str, Any]:
    """The path item of one model's (or version's) inference, with the rows it takes."""
    return {
        "post": _operation(
            f"Inference with model {label}",
            tag="inference",
            body=body,
            answer=_ref("InferResponse"),
            errors=_INFER_ERRORS,
            binary_answer=True,
        )
    }


async def gateway_paths(gateway: Gateway) -> dict[str, Any]:
    """Paths of the gateway's own apps and models, with the rows they take.

    Those whose model has not told its signature yet (no replica answered) are left
    to the generic paths.
    """
    paths: dict[str, Any] = {}
    for app in gateway.apps.values():
        signature = await _current_signature(gateway, app.linked[0]) if app.linked else None
        if signature is None:
            continue
        config = app.config
        paths[f"/apps/{app.name}/predict"] = {
            "post": _operation(
                f"Predict with app {app.name!r}",
                tag="apps",
                body=predict_body(signature),
                answer=_ref("PredictResponse"),
                errors=_PREDICT_ERRORS,
            )
        }
        paths[f"/apps/{app.name}/feedback"] = {
            "post": _operation(
                f"Label an example for app {app.name!r}",
                tag="apps",
                body=feedback_body(signature, config.policy, config.task, config.classes),
                errors=_FEEDBACK_ERRORS,
            )
        }
    for model in gateway.models.values():
        signature = await _current_signature(gateway, model.name)
        body = infer_body(signature) if signature is not None else None
        if body is not None:
            paths[f"/v2/models/{model.name}/infer"] = _infer_path(repr(model.name), body)
        for name, version in model.versions.items():
            signature = await _signature(version)
            body = infer_body(signature) if signature is not None else None
            if body is not None:
                label = f"{model.name!r} version {name!r}"
                paths[f"/v2/models/{model.name}/versions/{name}/infer"] = _infer_path(label, body)
    return paths
