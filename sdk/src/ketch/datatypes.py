"""The Open Inference Protocol's tensor datatypes and their numpy equivalents."""

from __future__ import annotations

from typing import Final

import numpy as np

from ketch.errors import InvalidInputError

__all__ = ["DATATYPES", "datatype_of", "is_datatype", "item_size", "numpy_dtype"]

_NUMPY_BY_DATATYPE: Final[dict[str, np.dtype[np.generic]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}

DATATYPES: Final[tuple[str, ...]] = (*_NUMPY_BY_DATATYPE, "BF16")
"""Every datatype name the protocol defines. BF16 has no numpy dtype and is rejected."""

_DATATYPE_BY_KIND_AND_SIZE: Final[dict[tuple[str, int], str]] = {
    (dtype.kind, dtype.itemsize): name
    for name, dtype in _NUMPY_BY_DATATYPE.items()
    if name != "BYTES"
}


def is_datatype(name: str) -> bool:
    """Whether ``name`` is one of the protocol's datatype names."""
    return name in DATATYPES


def numpy_dtype(datatype: str) -> np.dtype[np.generic]:
    """The numpy dtype that holds ``datatype`` (BYTES: object arrays of ``bytes``)."""
    try:
        return _NUMPY_BY_DATATYPE[datatype]
    except KeyError:
        if datatype == "BF16":
            raise InvalidInputError("datatype BF16 is not supported; send FP32 or FP16") from None
        raise InvalidInputError(
            f"unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
        ) from None


def datatype_of(dtype: np.dtype[np.generic] | type) -> str:
    """The protocol's datatype for a numpy dtype; strings and bytes map to BYTES."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "BYTES"
    try:
        return _DATATYPE_BY_KIND_AND_SIZE[(dtype.kind, dtype.itemsize)]
    except KeyError:
        raise InvalidInputError(
            f"numpy dtype {dtype} has no Open Inference Protocol datatype"
        ) from None


def item_size(datatype: str) -> int | None:
    """Bytes per element of a fixed-size datatype; None for BYTES."""
    if datatype == "BYTES":
        return None
    return numpy_dtype(datatype).itemsize
