"""Dimension ranges as Open Inference Protocol tensor parameters, and back.

Model metadata has no field for the sizes a variable dimension accepts, so a
tensor's ranges travel in its ``parameters`` map (MLServer's extension of the
protocol's ``TensorMetadata``), one plain value per key, so that any client can
read them without Ketch: ``dim_N_min`` and ``dim_N_max`` (absent: no upper bound)
are whole numbers, ``dim_N_name`` a string, for dimension ``N`` counted from the
batch dimension (0).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Final

from ketch.proto import grpc_service_pb2 as pb
from ketch.signature import VARIABLE, DimensionRange, TensorSpec

__all__ = [
    "fill_parameters",
    "parameter_values",
    "range_parameters",
    "ranges_from_parameters",
]

_KEY: Final = re.compile(r"dim_(\d+)_(min|max|name)")


def range_parameters(spec: TensorSpec) -> dict[str, int | str]:
    """The parameters that publish ``spec``'s ranges (empty when it has none)."""
    parameters: dict[str, int | str] = {}
    for axis, bounds in enumerate(spec.ranges):
        if bounds is None:
            continue
        parameters[f"dim_{axis}_min"] = bounds.minimum
        if bounds.maximum is not None:
            parameters[f"dim_{axis}_max"] = bounds.maximum
        if bounds.name:
            parameters[f"dim_{axis}_name"] = bounds.name
    return parameters


def fill_parameters(
    target: MutableMapping[str, pb.InferParameter], values: Mapping[str, int | str]
) -> None:
    """Write plain values into a protobuf ``map<string, InferParameter>``."""
    for key, value in values.items():
        if isinstance(value, str):
            target[key].string_param = value
        else:
            target[key].int64_param = value


def parameter_values(parameters: Mapping[str, pb.InferParameter]) -> dict[str, object]:
    """A protobuf ``map<string, InferParameter>`` as plain Python values."""
    values: dict[str, object] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            values[key] = getattr(parameter, choice)
    return values


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _range(fields: Mapping[str, object]) -> DimensionRange | None:
    minimum = _whole(fields.get("min", 0))
    maximum = _whole(fields.get("max")) if "max" in fields else None
    if minimum is None or minimum < 0 or ("max" in fields and maximum is None):
        return None
    if maximum is not None and maximum < minimum:
        return None
    return DimensionRange(minimum, maximum, str(fields.get("name", "")))


def ranges_from_parameters(
    shape: tuple[int, ...], parameters: Mapping[str, object]
) -> tuple[DimensionRange | None, ...]:
    """The ranges that ``parameters`` publish for a tensor of ``shape``; () when none.

    Keys that are not ranges, name a dimension the shape does not let vary, or hold
    values that are not whole numbers are ignored: the parameters may come from
    another server, and may hold other facts.
    """
    found: dict[int, dict[str, object]] = {}
    for key, value in parameters.items():
        match = _KEY.fullmatch(key)
        if match is None:
            continue
        axis = int(match.group(1))
        if 0 < axis < len(shape) and shape[axis] == VARIABLE:
            found.setdefault(axis, {})[match.group(2)] = value
    ranges: list[DimensionRange | None] = [None] * len(shape)
    for axis, fields in found.items():
        ranges[axis] = _range(fields)
    return tuple(ranges) if any(ranges) else ()
