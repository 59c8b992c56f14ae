"""JSON values to and from numpy arrays of a protocol datatype.

A value that does not fit is an :class:`~ketch_gateway.errors.InvalidValue` that
says what is wrong; the caller says where (which field or row held the values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ketch import InvalidInputError, numpy_dtype
from ketch_gateway.errors import InvalidValue

__all__ = ["array_from_json", "flatten", "json_from_array"]


def _walk(values: Any, refuse_objects: bool) -> tuple[list[Any], int]:
    """The scalars of nested lists, row-major, and how deep the lists nest.

    Iterative, so that lists nested however deep never exhaust the stack.
    """
    if not isinstance(values, list):
        return [values], 0
    flat: list[Any] = []
    stack: list[Any] = [iter(values)]
    depth = 1
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                depth = max(depth, len(stack))
                break
            if refuse_objects and isinstance(item, dict):
                raise InvalidValue("expected numbers, booleans or strings, got an object")
            flat.append(item)
        else:
            stack.pop()
    return flat, depth


def flatten(values: Any) -> list[Any]:
    """A nested list flattened row-major (scalars stay one element); objects are refused."""
    return _walk(values, refuse_objects=True)[0]


def _bytes_elements(flat: Sequence[Any]) -> np.ndarray:
    array = np.empty(len(flat), dtype=object)
    for index, value in enumerate(flat):
        if not isinstance(value, str):
            raise InvalidValue(f"BYTES elements are strings; element {index} is {value!r}")
        array[index] = value.encode("utf-8")
    return array


def _first_bad(flat: Sequence[Any], accept: tuple[type, ...]) -> tuple[int, Any]:
    return next(
        (index, value)
        for index, value in enumerate(flat)
        if not isinstance(value, accept) or (bool not in accept and isinstance(value, bool))
    )


def _as_array(values: Any, shape: Sequence[int]) -> np.ndarray:
    """The values as an array; lists nested deeper than ``shape`` are refused."""
    try:
        array = np.asarray(values)
    except (ValueError, OverflowError):  # ragged, too deep for numpy, or past 64 bits
        pass
    else:
        if array.dtype != object:
            _check_depth(array.ndim, shape)
            return array
    flat, depth = _walk(values, refuse_objects=False)
    _check_depth(depth, shape)
    try:
        return np.asarray(flat)
    except (ValueError, OverflowError):
        return np.asarray(flat, dtype=object)


def flatten_quietly(values: Any) -> list[Any]:
    """``flatten`` for error messages: objects are kept as elements instead of refused."""
    return _walk(values, refuse_objects=False)[0]


def _check_depth(depth: int, shape: Sequence[int]) -> None:
    if depth > max(len(shape), 1):
        raise InvalidValue(
            f"the values nest {depth} lists deep; shape {list(shape)} has "
            f"{len(shape)} dimension{'s' if len(shape) != 1 else ''}"
        )


def _numbers(raw: np.ndarray, values: Any, datatype: str) -> np.ndarray:
    dtype = numpy_dtype(datatype)
    if datatype == "BOOL":
        if raw.size and raw.dtype.kind != "b":
            index, value = _first_bad(flatten_quietly(values), (bool,))
            raise InvalidValue(f"BOOL elements are true or false; element {index} is {value!r}")
        return raw.astype(dtype)
    if raw.size and raw.dtype.kind not in "iuf":
        if raw.dtype.kind == "b":
            raise InvalidValue(f"{datatype} elements are numbers, not true or false")
        try:
            index, value = _first_bad(flatten_quietly(values), (int, float))
        except StopIteration:
            raise InvalidValue(f"a value does not fit in {datatype}") from None
        raise InvalidValue(f"{datatype} elements are numbers; element {index} is {value!r}")
    if dtype.kind in "iu" and raw.size:
        if raw.dtype.kind == "f" and not np.all(np.mod(raw, 1) == 0):
            raise InvalidValue(f"{datatype} elements are whole numbers")
        limits = np.iinfo(dtype.name)
        if raw.min() < limits.min or raw.max() > limits.max:
            raise InvalidValue(f"a value does not fit in {datatype}")
    return raw.astype(dtype)


def array_from_json(values: Any, datatype: str, shape: Sequence[int]) -> np.ndarray:
    """The array that JSON ``values`` (flat or nested, row-major) hold as ``datatype``."""
    try:
        numpy_dtype(datatype)
    except InvalidInputError as error:
        raise InvalidValue(str(error)) from None
    count = math.prod(shape)
    if datatype == "BYTES":
        flat, depth = _walk(values, refuse_objects=True)
        _check_depth(depth, shape)
        if len(flat) != count:
            raise InvalidValue(
                f"{len(flat)} values do not match shape {list(shape)}, which holds {count}"
            )
        return _bytes_elements(flat).reshape(tuple(shape))
    raw = _as_array(values, shape).reshape(-1)
    if raw.size != count:
        raise InvalidValue(
            f"{raw.size} values do not match shape {list(shape)}, which holds {count}"
        )
    return _numbers(raw, values, datatype).reshape(tuple(shape))


def _text(value: object) -> object:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _finite_or_named(array: np.ndarray) -> np.ndarray:
    """Non-finite floats as the strings protobuf's JSON mapping uses, since JSON has none."""
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return array
    named = array.astype(object)
    named[np.isnan(array)] = "NaN"
    named[np.isposinf(array)] = "Infinity"
    named[np.isneginf(array)] = "-Infinity"
    return named


def json_from_array(array: np.ndarray, flat: bool = True) -> Any:
    """The array as JSON values: flat row-major by default; bytes become UTF-8 text.

    NaN and infinities, which JSON cannot hold, become ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"``, as in protobuf's JSON mapping (the protocol's gRPC messages).
    """
    array = _finite_or_named(array)
    source = array.reshape(-1) if flat else array
    if array.dtype == object:
        if flat:
            return [_text(value) for value in source]
        return (
            np.vectorize(_text, otypes=[object])(source).tolist()
            if source.size
            else source.tolist()
        )
    return source.tolist()
