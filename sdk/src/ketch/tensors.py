"""Raw tensor bytes as the Open Inference Protocol carries them, to and from numpy.

Fixed-size elements are row-major and little-endian. A BYTES tensor is the
concatenation of its elements, each prefixed by its length as a 4-byte
little-endian unsigned integer.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

import numpy as np

from ketch.datatypes import datatype_of, numpy_dtype
from ketch.errors import InvalidInputError

__all__ = [
    "MAX_DIMENSIONS",
    "MAX_ELEMENTS",
    "check_shape",
    "decode_bytes_elements",
    "decode_raw",
    "element_count",
    "encode_raw",
    "text_rows",
    "to_bytes",
]

_LENGTH = struct.Struct("<I")

MAX_DIMENSIONS = 64
"""The most dimensions a tensor may have (numpy's own limit)."""
MAX_ELEMENTS = 2**40
"""A bound on the product of a shape's non-zero dimensions.

No tensor that fits in a request is near it; an empty tensor whose other dimensions
multiply past what numpy can describe is refused rather than failing inside numpy.
"""


def element_count(shape: Sequence[int]) -> int:
    """Number of elements in a tensor of ``shape``."""
    return math.prod(shape)


def check_shape(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as a tuple; InvalidInputError when it is negative or too large.

    Too large means more than :data:`MAX_DIMENSIONS` dimensions, or non-zero
    dimensions whose product passes :data:`MAX_ELEMENTS` (even when another is 0).
    """
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise InvalidInputError(f"tensor {name!r}: shape {list(dims)} has a negative dimension")
    if len(dims) > MAX_DIMENSIONS:
        raise InvalidInputError(
            f"tensor {name!r}: shape has {len(dims)} dimensions; at most {MAX_DIMENSIONS}"
        )
    if math.prod(d for d in dims if d) > MAX_ELEMENTS:
        raise InvalidInputError(
            f"tensor {name!r}: shape {list(dims)} is too large: its non-zero dimensions "
            f"multiply past 2**40"
        )
    return dims


def decode_raw(name: str, datatype: str, shape: Sequence[int], raw: bytes) -> np.ndarray:
    """The array that ``raw`` holds for a tensor of ``datatype`` and ``shape``.

    Raises InvalidInputError, naming the tensor, when the byte count does not
    match the shape. Fixed-size tensors are zero-copy, read-only views of ``raw``.
    """
    dims = check_shape(name, shape)
    count = element_count(dims)
    dtype = numpy_dtype(datatype)
    if datatype == "BYTES":
        elements = decode_bytes_elements(name, raw, count)
        array = np.empty(count, dtype=object)
        array[:] = elements
        return array.reshape(dims)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInputError(
            f"tensor {name!r}: {len(raw)} bytes of raw contents do not match shape "
            f"{list(dims)} of {datatype}, which takes {expected} bytes"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(dims)


def decode_bytes_elements(name: str, raw: bytes, count: int) -> list[bytes]:
    """Split a BYTES tensor's raw contents into exactly ``count`` elements."""
    elements: list[bytes] = []
    view = memoryview(raw)
    offset = 0
    end = len(raw)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInputError(
                f"tensor {name!r}: BYTES contents end inside an element's 4-byte length prefix"
            )
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInputError(
                f"tensor {name!r}: BYTES element {len(elements)} declares {length} bytes "
                f"but only {end - offset} remain"
            )
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    if len(elements) != count:
        raise InvalidInputError(
            f"tensor {name!r}: BYTES contents hold {len(elements)} elements but the shape "
            f"needs {count}"
        )
    return elements


def to_bytes(element: object) -> bytes:
    """One BYTES element as bytes: ``str`` is UTF-8 encoded, other objects are refused."""
    if isinstance(element, bytes):
        return element
    if isinstance(element, str):
        return element.encode("utf-8")
    if isinstance(element, np.bytes_ | np.str_):
        return to_bytes(element.item())
    raise InvalidInputError(f"a BYTES element must be bytes or str, not {type(element).__name__}")


def encode_raw(array: np.ndarray, datatype: str | None = None) -> bytes:
    """The raw contents of ``array`` as ``datatype`` (by default, the array's own)."""
    datatype = datatype or datatype_of(array.dtype)
    if datatype == "BYTES":
        return _encode_bytes_elements(array.reshape(-1))
    dtype = numpy_dtype(datatype)
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def _encode_bytes_elements(elements: Iterable[object]) -> bytes:
    parts: list[bytes] = []
    for element in elements:
        data = to_bytes(element)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def text_rows(values: np.ndarray, input_name: str) -> list[str]:
    """The elements of a BYTES input as text; InvalidInputError naming a row that is not UTF-8.

    For plugins whose framework takes strings (text models, DataFrame columns).
    """
    texts = []
    for row, value in enumerate(values.tolist()):
        if not isinstance(value, bytes):
            texts.append(str(value))
            continue
        try:
            texts.append(value.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise InvalidInputError(
                f"input {input_name!r} row {row} is not valid UTF-8: {error}"
            ) from None
    return texts
