"""``GET /openapi.json``: the Apps, Open Inference Protocol and admin APIs, described."""

from __future__ import annotations

import copy
import re
from typing import Any

from ketch.version import __version__

__all__ = ["openapi_document"]

_ERROR = {
    "description": "The problem, named",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            }
        }
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


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
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            "200": {"description": "OK", **_json(answer or {"type": "object"})},
            **{str(code): _ERROR for code in errors},
        },
    }
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body)}
    if admin:
        operation["security"] = [{"bearer": []}]
        operation["responses"].update({"401": _ERROR, "403": _ERROR, "429": _ERROR})
    return operation


_SCHEMAS: dict[str, Any] = {
    "Row": {
        "description": "A number, a nested list of numbers, a string, or (for a model with "
        "several inputs) an object of those by input name"
    },
    "PredictRequest": {
        "type": "object",
        "properties": {
            "input": _ref("Row"),
            "inputs": {"type": "array", "items": _ref("Row"), "minItems": 1},
            "user": {"type": "string"},
        },
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
            "label": {},
            "user": {"type": "string"},
            "query_id": {"type": "string"},
        },
    },
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
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
            "inputs": {"type": "array", "items": _ref("Tensor")},
            "outputs": {"type": "array", "items": {"type": "object"}},
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
            "version": {"type": "string"},
            "addresses": {"type": "array", "items": {"type": "string"}},
            "plugin": {"type": "string"},
            "path": {"type": "string"},
            "device": {"type": "string"},
            "count": {"type": "integer", "minimum": 0},
            "options": {"type": "object", "additionalProperties": {"type": "string"}},
            "max_batch": {"type": "integer", "minimum": 1},
        },
    },
    "Model": {
        "type": "object",
        "required": ["name", "versions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "versions": {"type": "array", "items": _ref("Version")},
            "timeout_ms": {"type": "number"},
        },
    },
    "App": {
        "type": "object",
        "required": ["name", "models", "latency_objective_ms"],
        "properties": {
            "name": {"type": "string"},
            "models": {"type": "array", "items": {"type": "string"}},
            "latency_objective_ms": {"type": "number"},
            "policy": {"type": "string", "enum": ["single"]},
            "default_output": {},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    model_path = "/v2/models/{model}"
    replicas = "/admin/models/{model}/versions/{version}/replicas"
    paths: dict[str, Any] = {
        "/apps/{app}/predict": {
            "post": _operation(
                "Predict one row or several within the app's latency objective",
                tag="apps",
                body=_ref("PredictRequest"),
                answer=_ref("PredictResponse"),
                errors=(400, 404, 413, 503),
            )
        },
        "/apps/{app}/feedback": {
            "post": _operation(
                "Record a labelled example", tag="apps", body=_ref("FeedbackRequest")
            )
        },
        "/v2": {"get": _operation("Server metadata", tag="inference", errors=())},
        "/v2/health/live": {"get": _operation("Liveness", tag="inference", errors=())},
        "/v2/health/ready": {
            "get": _operation("Readiness (503 when not ready)", tag="inference", errors=(503,))
        },
        model_path: {"get": _operation("Model metadata", tag="inference")},
        model_path + "/ready": {
            "get": _operation("Model readiness", tag="inference", errors=(404, 503))
        },
        model_path + "/infer": {
            "post": _operation(
                "Inference (JSON, or binary tensors with Inference-Header-Content-Length)",
                tag="inference",
                body=_ref("InferRequest"),
                answer=_ref("InferResponse"),
                errors=(400, 404, 413, 503, 504),
            )
        },
        "/metrics": {"get": _operation("Prometheus metrics", tag="operations", errors=())},
        "/dashboard": {
            "get": _operation(
                "The live dashboard page (HTML; its data needs the admin token unless "
                '[gateway] dashboard = "open")',
                tag="operations",
                errors=(404,),
            )
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
                body={"type": "object", "properties": {"version": {"type": "string"}}},
                admin=True,
            )
        },
        replicas: {
            "post": _operation(
                "Add an external replica",
                tag="admin",
                body={"type": "object", "properties": {"address": {"type": "string"}}},
                admin=True,
            ),
            "put": _operation(
                "Run N managed replicas (at most [admin] max_replicas)",
                tag="admin",
                body={"type": "object", "properties": {"count": {"type": "integer"}}},
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
        "/admin/apps/{app}": {"delete": _operation("Remove an app", tag="admin", admin=True)},
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
                body={"type": "object", "properties": {"model": {"type": "string"}}},
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
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
