"""The Open Inference Protocol's REST bodies: JSON, and the binary-tensor extension.

With the extension, the request header ``Inference-Header-Content-Length: N`` says
that the first N bytes of the body are the JSON document; the rest are the raw
contents of the inputs whose parameters carry ``binary_data_size``, in order. An
output asked for with ``"parameters": {"binary_data": true}`` (or every output, when
the request's parameters say ``"binary_data_output": true``) is answered the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson

from ketch import InvalidInputError
from ketch.tensors import MAX_DIMENSIONS, MAX_ELEMENTS, decode_raw, encode_raw
from ketch_gateway.errors import BadRequest, InvalidValue
from ketch_gateway.http.bodies import parse_json
from ketch_gateway.json_values import array_from_json, json_from_array

__all__ = [
    "HEADER_LENGTH",
    "InferRequest",
    "RequestedOutput",
    "encode_infer_response",
    "parse_infer_request",
]

HEADER_LENGTH: Final = "inference-header-content-length"


@dataclass(frozen=True)
class RequestedOutput:
    """An output the caller asked for, and whether it wants it as raw bytes."""

    name: str
    binary: bool


@dataclass
class InferRequest:
    """A parsed inference request."""

    inputs: dict[str, np.ndarray]
    outputs: list[RequestedOutput] | None
    request_id: str | None = None
    binary_output: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def _object(value: Any, field_name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{field_name}: expected an object, got {type(value).__name__}")
    return value


def _shape(value: Any, field_name: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise BadRequest(f"{field_name}: expected an array of sizes (whole numbers >= 0)")
    if len(value) > MAX_DIMENSIONS:
        raise BadRequest(f"{field_name}: {len(value)} dimensions; at most {MAX_DIMENSIONS}")
    if math.prod(d for d in value if d) > MAX_ELEMENTS:
        raise BadRequest(
            f"{field_name}: {value} is too large: its non-zero sizes multiply past 2**40"
        )
    return value


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    try:
        length = int(header_length)
    except ValueError:
        raise BadRequest(
            f"Inference-Header-Content-Length: {header_length!r} is not a number"
        ) from None
    if not 0 < length <= len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length: {length} is not within the body's {len(body)} bytes"
        )
    return body[:length], memoryview(body)[length:]


def _load_json(document: bytes) -> dict[str, Any]:
    return _object(parse_json(document), "the body")


def _read_input(
    tensor: dict[str, Any], index: int, binary: memoryview, offset: int
) -> tuple[str, np.ndarray, int]:
    where = f"inputs[{index}]"
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name: expected a non-empty string")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str):
        raise BadRequest(f'{where}.datatype: expected a string such as "FP32"')
    shape = _shape(tensor.get("shape"), f"{where}.shape")
    parameters = _object(tensor.get("parameters", {}), f"{where}.parameters")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in tensor:
            raise BadRequest(f"{where}.data: missing (or send it as binary with binary_data_size)")
        try:
            array = array_from_json(tensor["data"], datatype, shape)
        except InvalidValue as error:
            raise error.within("inputs", index, "data") from None
        return name, array, offset
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(f"{where}.parameters.binary_data_size: expected a whole number of bytes")
    if offset + size > len(binary):
        raise BadRequest(
            f"{where}: binary_data_size {size} goes past the end of the binary data "
            f"({len(binary) - offset} bytes left)"
        )
    try:
        array = decode_raw(name, datatype, shape, bytes(binary[offset : offset + size]))
    except InvalidInputError as error:
        raise BadRequest(f"{where}: {error}") from None
    return name, array, offset + size


def _requested_outputs(
    document: dict[str, Any], default_binary: bool
) -> list[RequestedOutput] | None:
    if "outputs" not in document:
        return None
    outputs = document["outputs"]
    if not isinstance(outputs, list):
        raise BadRequest('outputs: expected an array of {"name": ...}')
    requested = []
    for index, entry in enumerate(outputs):
        item = _object(entry, f"outputs[{index}]")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"outputs[{index}].name: expected a non-empty string")
        parameters = _object(item.get("parameters", {}), f"outputs[{index}].parameters")
        if "classification" in parameters:
            raise BadRequest(f"outputs[{index}].parameters.classification: not supported")
        binary = parameters.get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise BadRequest(f"outputs[{index}].parameters.binary_data: expected true or false")
        requested.append(RequestedOutput(name, binary))
    return requested


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """The inputs and requested outputs of an inference request body."""
    document_bytes, binary = _split_body(body, header_length)
    document = _load_json(document_bytes)
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("id: expected a string")
    parameters = _object(document.get("parameters", {}), "parameters")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise BadRequest("parameters.binary_data_output: expected true or false")
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise BadRequest("inputs: expected a non-empty array of input tensors")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for index, tensor in enumerate(tensors):
        name, array, offset = _read_input(
            _object(tensor, f"inputs[{index}]"), index, binary, offset
        )
        if name in inputs:
            raise BadRequest(f"inputs[{index}].name: {name!r} is sent twice")
        inputs[name] = array
    if offset != len(binary):
        raise BadRequest(
            f"{len(binary) - offset} bytes of binary data follow the last binary input"
        )
    return InferRequest(
        inputs=inputs,
        outputs=_requested_outputs(document, binary_output),
        request_id=request_id,
        binary_output=binary_output,
        parameters=parameters,
    )


def encode_infer_response(
    *,
    model: str,
    version: str,
    outputs: Mapping[str, np.ndarray],
    datatypes: Mapping[str, str],
    binary: Sequence[str],
    request_id: str | None,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    described = []
    chunks = []
    for name, array in outputs.items():
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": datatypes[name],
            "shape": list(array.shape),
        }
        if name in binary:
            raw = encode_raw(array, datatypes[name])
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = json_from_array(array)
        described.append(tensor)
    document: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": described}
    if request_id is not None:
        document["id"] = request_id
    if parameters:
        document["parameters"] = dict(parameters)
    header = orjson.dumps(document)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
