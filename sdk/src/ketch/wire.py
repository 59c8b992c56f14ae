"""Open Inference Protocol messages to and from numpy arrays, for servers and clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from ketch.datatypes import datatype_of, numpy_dtype
from ketch.errors import InvalidInputError
from ketch.proto import grpc_service_pb2 as pb
from ketch.tensors import check_shape, decode_raw, element_count, encode_raw

__all__ = [
    "TensorHeader",
    "decode_tensors",
    "infer_request",
    "infer_response",
    "response_arrays",
    "tensor_header",
]

_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class TensorHeader(Protocol):
    """What input and output tensor messages share: a name, a datatype, a shape, contents."""

    @property
    def name(self) -> str:
        """The tensor's name."""

    @property
    def datatype(self) -> str:
        """The tensor's datatype name."""

    @property
    def shape(self) -> Sequence[int]:
        """The tensor's shape."""

    @property
    def contents(self) -> pb.InferTensorContents:
        """The typed contents, when no raw contents carry the tensor."""


def _decode_contents(tensor: TensorHeader) -> np.ndarray:
    """A tensor sent in the typed ``contents`` field instead of raw bytes."""
    dims = check_shape(tensor.name, tensor.shape)
    dtype = numpy_dtype(tensor.datatype)
    field = _CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise InvalidInputError(
            f"tensor {tensor.name!r}: {tensor.datatype} must travel in raw contents"
        )
    values = getattr(tensor.contents, field)
    if len(values) != element_count(dims):
        raise InvalidInputError(
            f"tensor {tensor.name!r}: {len(values)} values in {field} do not match shape "
            f"{list(dims)}, which holds {element_count(dims)}"
        )
    if tensor.datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return array.reshape(dims)
    return np.asarray(values, dtype=dtype).reshape(dims)


def decode_tensors(tensors: Sequence[TensorHeader], raw: Sequence[bytes]) -> dict[str, np.ndarray]:
    """The arrays a request carries, by name, whether in raw or typed contents."""
    if raw and len(raw) != len(tensors):
        raise InvalidInputError(
            f"{len(raw)} raw contents for {len(tensors)} tensors; send one per tensor, in order"
        )
    arrays: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(tensors):
        if tensor.name in arrays:
            raise InvalidInputError(f"tensor {tensor.name!r} is sent twice")
        if raw:
            arrays[tensor.name] = decode_raw(tensor.name, tensor.datatype, tensor.shape, raw[index])
        else:
            arrays[tensor.name] = _decode_contents(tensor)
    return arrays


def tensor_header(
    message: pb.ModelInferRequest.InferInputTensor | pb.ModelInferResponse.InferOutputTensor,
    name: str,
    array: np.ndarray,
    datatype: str | None = None,
) -> bytes:
    """Fill a tensor message's name, datatype and shape; return the raw contents."""
    datatype = datatype or datatype_of(array.dtype)
    message.name = name
    message.datatype = datatype
    message.shape.extend(array.shape)
    return encode_raw(array, datatype)


def infer_request(
    inputs: Mapping[str, np.ndarray],
    *,
    model: str,
    version: str = "",
    outputs: Sequence[str] | None = None,
    request_id: str = "",
) -> pb.ModelInferRequest:
    """A ModelInfer request carrying ``inputs`` in raw contents."""
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    for name, array in inputs.items():
        raw = tensor_header(request.inputs.add(), name, np.asarray(array))
        request.raw_input_contents.append(raw)
    for name in outputs or ():
        request.outputs.add(name=name)
    return request


def infer_response(
    outputs: Mapping[str, np.ndarray],
    datatypes: Mapping[str, str],
    *,
    model: str,
    version: str,
    request_id: str = "",
) -> pb.ModelInferResponse:
    """A ModelInfer response carrying ``outputs`` in raw contents, as ``datatypes`` declares."""
    response = pb.ModelInferResponse(model_name=model, model_version=version, id=request_id)
    for name, array in outputs.items():
        raw = tensor_header(response.outputs.add(), name, array, datatypes.get(name))
        response.raw_output_contents.append(raw)
    return response


def response_arrays(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """The output arrays a ModelInfer response carries, by name."""
    return decode_tensors(response.outputs, response.raw_output_contents)
