"""ONNX element types, as onnxruntime names them, and the Open Inference Protocol datatypes.

onnxruntime describes a session's inputs and outputs with type names such as
``tensor(float)`` or ``seq(tensor(float))``; reading them there, rather than from the
graph with the ``onnx`` package, spares a replica onnx's import (about two seconds).

``bfloat16`` has no numpy dtype and no usable OIP datatype (OIP's BF16 has no
numpy form), so a bfloat16 input or output travels as FP32 and the graph is given
a Cast at its boundary (:mod:`ketch_onnx.graph`).
"""

from __future__ import annotations

from typing import Final

from ketch import ModelLoadError

__all__ = ["BFLOAT16", "datatype_of_element", "tensor_element"]

BFLOAT16: Final = "bfloat16"

_DATATYPE_BY_ELEMENT: Final[dict[str, str]] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
}
_KIND_NAMES: Final[dict[str, str]] = {
    "seq": "sequence_type",
    "map": "map_type",
    "optional": "optional_type",
    "sparse_tensor": "sparse_tensor_type",
}
"""onnxruntime's names for the kinds of value that are not tensors, as ONNX's TypeProto
names them (the names a graph's author finds in the ONNX specification)."""


def tensor_element(type_name: str, what: str) -> str:
    """The element type of a ``tensor(...)`` type name; ModelLoadError for any other value."""
    kind, _, rest = type_name.partition("(")
    if kind != "tensor" or not rest.endswith(")"):
        named = _KIND_NAMES.get(kind, type_name)
        raise ModelLoadError(f"{what} is a {named}, not a tensor; Ketch serves tensors")
    return rest[:-1]


def datatype_of_element(element: str, what: str) -> str:
    """The OIP datatype for element type ``element``; ModelLoadError names ``what`` if none."""
    try:
        return _DATATYPE_BY_ELEMENT[element]
    except KeyError:
        raise ModelLoadError(
            f"{what} has element type {element}, which Ketch cannot serve (it serves "
            f"{', '.join(_DATATYPE_BY_ELEMENT)}, and {BFLOAT16} as FP32)"
        ) from None
