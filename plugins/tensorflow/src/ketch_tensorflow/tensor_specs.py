"""TensorFlow's dtypes and shapes as Open Inference Protocol datatypes and Ketch shapes."""

from __future__ import annotations

from typing import Any, Final

from ketch import ModelLoadError, TensorSpec

__all__ = ["DATATYPE_BY_DTYPE", "ketch_tensor_spec"]

DATATYPE_BY_DTYPE: Final[dict[str, str]] = {
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
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
}
"""TensorFlow dtype names and the datatypes that carry them; ``tf.string`` is BYTES."""


def _dtype_name(dtype: Any) -> str:
    """``tf.float32`` and Keras's ``"float32"`` alike as ``float32``."""
    return str(getattr(dtype, "name", dtype))


def _dimensions(shape: Any) -> list[int | None] | None:
    """The sizes of ``shape`` (None for an unknown size), or None when its rank is unknown."""
    if shape is None or getattr(shape, "rank", 0) is None:
        return None
    return [None if size is None else int(size) for size in shape]


def ketch_tensor_spec(name: str, dtype: Any, shape: Any, what: str) -> TensorSpec:
    """The Ketch spec of a model's tensor; ModelLoadError when Ketch cannot serve it.

    ``what`` names the tensor in errors (``input 'text' of signature serving_default``).
    The first dimension must be the batch: unknown (None) in the model's own signature.
    """
    dtype_name = _dtype_name(dtype)
    datatype = DATATYPE_BY_DTYPE.get(dtype_name)
    if datatype is None:
        raise ModelLoadError(
            f"{what} has dtype {dtype_name}, which Ketch cannot carry; supported: "
            f"{', '.join(DATATYPE_BY_DTYPE)}"
        )
    dimensions = _dimensions(shape)
    if dimensions is None:
        raise ModelLoadError(f"{what} has an unknown rank; Ketch needs its shape")
    if not dimensions:
        raise ModelLoadError(f"{what} is a scalar; Ketch needs the first dimension to be the batch")
    if dimensions[0] is not None:
        raise ModelLoadError(
            f"{what} has shape {dimensions} with a fixed first dimension; Ketch needs the "
            "first dimension to be the batch, of any size (None in the model's signature)"
        )
    row_shape = tuple(-1 if size is None else size for size in dimensions[1:])
    return TensorSpec(name, datatype, (-1, *row_shape))
