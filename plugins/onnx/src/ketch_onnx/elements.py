"""ONNX element types and the Open Inference Protocol datatypes that carry them.

``bfloat16`` has no numpy dtype and no usable OIP datatype (OIP's BF16 has no
numpy form), so a bfloat16 input or output travels as FP32 and the graph is given
a Cast at its boundary (:mod:`ketch_onnx.graph`).
"""

from __future__ import annotations

from typing import Final

from onnx import TensorProto

from ketch import ModelLoadError

__all__ = ["BFLOAT16", "datatype_of_element"]

BFLOAT16: Final = TensorProto.BFLOAT16

_DATATYPE_BY_ELEMENT: Final[dict[int, str]] = {
    TensorProto.BOOL: "BOOL",
    TensorProto.UINT8: "UINT8",
    TensorProto.UINT16: "UINT16",
    TensorProto.UINT32: "UINT32",
    TensorProto.UINT64: "UINT64",
    TensorProto.INT8: "INT8",
    TensorProto.INT16: "INT16",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.FLOAT16: "FP16",
    TensorProto.FLOAT: "FP32",
    TensorProto.DOUBLE: "FP64",
    TensorProto.STRING: "BYTES",
}


def datatype_of_element(element: int, what: str) -> str:
    """The OIP datatype for ONNX element type ``element``; ModelLoadError names ``what`` if none."""
    try:
        return _DATATYPE_BY_ELEMENT[element]
    except KeyError:
        known = element in TensorProto.DataType.values()
        name = TensorProto.DataType.Name(element) if known else str(element)
        raise ModelLoadError(
            f"{what} has element type {name}, which Ketch cannot serve (it serves "
            f"{', '.join(TensorProto.DataType.Name(e) for e in _DATATYPE_BY_ELEMENT)}, and "
            "BFLOAT16 as FP32)"
        ) from None
