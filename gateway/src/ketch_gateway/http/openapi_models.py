"""The OpenAPI paths of this gateway's own apps and models, with their real row schemas.

The generic paths (``/apps/{app}/predict``) describe any app; these describe one:
a row of the digits app is exactly 64 numbers, a text app's row is a string. A
body valid against them is one the gateway accepts, so tools that generate
requests from the document (clients, fuzzers) send rows the model takes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ketch import Signature, TensorSpec
from ketch_gateway.correction.labels import MAX_TEXT_CHARACTERS
from ketch_gateway.correction.registry import POLICIES

__all__ = ["feedback_body", "infer_body", "label_schema", "predict_body", "row_schema"]

Schema = dict[str, Any]
_USER: Schema = {"type": ["string", "null"], "minLength": 1}
"""A user's name (null: anyone, as if it were left out)."""


def element_schema(datatype: str) -> Schema:
    """One element of a tensor of ``datatype`` as JSON."""
    if datatype == "BOOL":
        return {"type": "boolean"}
    if datatype == "BYTES":
        return {"type": "string"}
    if datatype.startswith(("INT", "UINT")):
        limits = np.iinfo(datatype.lower())
        return {"type": "integer", "minimum": int(limits.min), "maximum": int(limits.max)}
    return {"type": "number"}


def _sizes(spec: TensorSpec) -> list[tuple[int, int | None]]:
    """Per row dimension, the fewest and most elements (variable ones by their range)."""
    sizes: list[tuple[int, int | None]] = []
    ranges = spec.ranges[1:] if spec.ranges else [None] * len(spec.row_shape)
    for size, bounds in zip(spec.row_shape, ranges, strict=True):
        if size >= 0:
            sizes.append((size, size))
        elif bounds is not None:
            sizes.append((max(bounds.minimum, 1), bounds.maximum))
        else:
            sizes.append((1, None))
    return sizes


def _nested(sizes: Sequence[tuple[int, int | None]], element: Schema) -> Schema:
    schema = element
    for fewest, most in reversed(sizes):
        schema = {"type": "array", "items": schema, "minItems": fewest}
        if most is not None:
            schema["maxItems"] = most
    return schema


def tensor_row_schema(spec: TensorSpec) -> Schema:
    """One row of ``spec``: an element, or nested arrays of the row's shape."""
    return _nested(_sizes(spec), element_schema(spec.datatype))


def row_schema(inputs: Sequence[TensorSpec]) -> Schema:
    """A row of the Apps API: the single input's row, or an object of rows by input name."""
    if len(inputs) == 1:
        return tensor_row_schema(inputs[0])
    return {
        "type": "object",
        "required": [spec.name for spec in inputs],
        "properties": {spec.name: tensor_row_schema(spec) for spec in inputs},
        "additionalProperties": False,
    }


def _at_most(schema: Schema) -> Schema:
    """A row's schema as a bound: arrays as long as the row's or shorter, text bounded."""
    if schema.get("type") == "string":
        return {**schema, "maxLength": MAX_TEXT_CHARACTERS}
    if schema.get("type") == "array":
        return {**schema, "minItems": 0, "items": _at_most(schema["items"])}
    return schema


def label_schema(signature: Signature, policy: str, task: str, classes: int) -> Schema:
    """A feedback label: a class index or a number for learning policies, else a row's answer."""
    if POLICIES[policy].learns:
        if task == "classification":
            return {"type": "integer", "minimum": 0, "maximum": classes - 1}
        return {"type": "number"}
    rows = [_at_most(tensor_row_schema(spec)) for spec in signature.outputs]
    if len(signature.outputs) > 1:
        rows.append(
            {
                "type": "object",
                "properties": {
                    spec.name: row for spec, row in zip(signature.outputs, rows, strict=True)
                },
                "additionalProperties": False,
            }
        )
    return rows[0] if len(rows) == 1 else {"anyOf": rows}


def predict_body(signature: Signature) -> Schema:
    """``/apps/NAME/predict``'s body: one row (``input``) or several (``inputs``)."""
    row = row_schema(signature.inputs)
    varies = any(fewest != most for spec in signature.inputs for fewest, most in _sizes(spec))
    return {
        "type": "object",
        "oneOf": [{"required": ["input"]}, {"required": ["inputs"]}],
        "properties": {
            "input": row,
            "inputs": {
                "type": "array",
                "items": row,
                "minItems": 1,
                "maxItems": 1 if varies else 64,
            },
            "user": _USER,
            "cache_report": {"type": "boolean"},
        },
        "additionalProperties": False,
    }


def feedback_body(signature: Signature, policy: str, task: str, classes: int) -> Schema:
    """``/apps/NAME/feedback``'s body: a row and its label."""
    return {
        "type": "object",
        "required": ["input", "label"],
        "properties": {
            "input": row_schema(signature.inputs),
            "label": label_schema(signature, policy, task, classes),
            "user": _USER,
            "query_id": {"type": ["string", "null"]},
        },
        "additionalProperties": False,
    }


def _flags(*names: str, refused: tuple[str, ...] = ()) -> Schema:
    """Parameters: these as booleans, ``refused`` absent, any others (they are ignored)."""
    properties: Schema = {name: {"type": "boolean"} for name in names}
    return {"type": "object", "properties": properties | dict.fromkeys(refused, False)}


def infer_body(signature: Signature) -> Schema | None:
    """An inference request of one row for a single-input model (None for others)."""
    if len(signature.inputs) != 1:
        return None
    spec = signature.inputs[0]
    row = [fewest for fewest, _ in _sizes(spec)]
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"const": spec.name},
            "datatype": {"const": spec.datatype},
            "shape": {"const": [1, *row]},
            "data": _nested([(math.prod(row), math.prod(row))], element_schema(spec.datatype)),
            "parameters": {"type": "object", "maxProperties": 0},
        },
    }
    output = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"enum": [out.name for out in signature.outputs]},
            "parameters": _flags("binary_data", refused=("classification",)),
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": _flags("binary_data_output", "ketch_cache"),
            "inputs": {"type": "array", "items": tensor, "minItems": 1, "maxItems": 1},
            "outputs": {"type": "array", "items": output},
        },
        "description": f"One row of {spec.name!r} (send any number of rows: shape [N, ...])",
    }
