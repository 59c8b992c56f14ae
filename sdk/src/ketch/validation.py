"""Checks that inputs fit a signature and that a plugin's outputs keep the contract."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ketch.datatypes import datatype_of
from ketch.errors import ContractViolation, InvalidInputError
from ketch.signature import Signature, TensorSpec

__all__ = ["validate_inputs", "validate_labels", "validate_outputs"]


def _names(specs: Mapping[str, TensorSpec]) -> str:
    return ", ".join(repr(name) for name in specs)


def _datatype_or_none(array: np.ndarray) -> str | None:
    try:
        return datatype_of(array.dtype)
    except InvalidInputError:
        return None


def validate_inputs(signature: Signature, inputs: Mapping[str, np.ndarray]) -> int:
    """The batch's row count, or InvalidInputError saying what was expected and what came.

    Every declared input must be present and no other; each must be a numpy array
    of the declared datatype whose rows have the declared shape; all inputs must
    have the same number of rows.
    """
    specs = signature.input_specs
    missing = [name for name in specs if name not in inputs]
    unknown = [name for name in inputs if name not in specs]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(repr, missing))}")
        if unknown:
            parts.append(f"unknown {', '.join(map(repr, unknown))}")
        raise InvalidInputError(f"expected inputs {_names(specs)}; {'; '.join(parts)}")
    rows: int | None = None
    for name, spec in specs.items():
        array = inputs[name]
        if not isinstance(array, np.ndarray):
            raise InvalidInputError(
                f"input {name!r}: expected a numpy array, got {type(array).__name__}"
            )
        got = _datatype_or_none(array)
        if got != spec.datatype:
            raise InvalidInputError(
                f"input {name!r}: expected datatype {spec.datatype}, got {got or array.dtype}"
            )
        if array.ndim == 0 or not spec.accepts_row_shape(array.shape[1:]):
            misfit = spec.range_misfit(array.shape) if array.ndim else None
            if misfit:
                raise InvalidInputError(f"input {name!r}: {misfit} (got shape {list(array.shape)})")
            raise InvalidInputError(
                f"input {name!r}: expected shape {list(spec.shape)}, got {list(array.shape)}"
            )
        if rows is None:
            rows = array.shape[0]
        elif array.shape[0] != rows:
            raise InvalidInputError(
                f"input {name!r} has {array.shape[0]} rows but the other inputs have {rows}"
            )
    assert rows is not None  # a signature has at least one input
    _check_shared_dimensions(specs, inputs)
    return rows


def _check_shared_dimensions(
    specs: Mapping[str, TensorSpec], inputs: Mapping[str, np.ndarray]
) -> None:
    """InvalidInputError when dimensions that share a range's name differ in size."""
    seen: dict[str, tuple[str, int, int]] = {}
    for name, spec in specs.items():
        for axis, bounds in enumerate(spec.ranges):
            if bounds is None or not bounds.name:
                continue
            size = int(inputs[name].shape[axis])
            first = seen.setdefault(bounds.name, (name, axis, size))
            if first[2] != size:
                raise InvalidInputError(
                    f"input {name!r}: dimension {axis} is {size}, but it shares the size "
                    f"{bounds.name!r} with input {first[0]!r} dimension {first[1]}, which is "
                    f"{first[2]}"
                )


def validate_labels(labels: np.ndarray, rows: int) -> None:
    """InvalidInputError unless ``labels`` is an array with one label per input row."""
    if not isinstance(labels, np.ndarray) or labels.ndim == 0:
        raise InvalidInputError("labels: expected an array with one row per input row")
    if labels.shape[0] != rows:
        raise InvalidInputError(f"labels: {labels.shape[0]} rows for {rows} input rows")


def validate_outputs(
    signature: Signature, outputs: Mapping[str, np.ndarray], rows: int, plugin: str = "plugin"
) -> dict[str, np.ndarray]:
    """The declared outputs in declaration order, or ContractViolation naming the fault.

    Each must be a numpy array of the declared datatype with exactly ``rows`` rows
    and the declared row shape.
    """
    if not isinstance(outputs, Mapping):
        raise ContractViolation(
            f"{plugin} returned {type(outputs).__name__} from ketch_batch_predict, "
            "not a mapping of output names to arrays"
        )
    checked: dict[str, np.ndarray] = {}
    for name, spec in signature.output_specs.items():
        if name not in outputs:
            raise ContractViolation(
                f"{plugin} did not return the declared output {name!r} (returned "
                f"{', '.join(map(repr, outputs)) or 'nothing'})"
            )
        array = outputs[name]
        if not isinstance(array, np.ndarray):
            raise ContractViolation(
                f"{plugin} returned {type(array).__name__} for output {name!r}, not a numpy array"
            )
        got = _datatype_or_none(array)
        if got != spec.datatype:
            raise ContractViolation(
                f"{plugin} returned datatype {got or array.dtype} for output {name!r}, "
                f"declared {spec.datatype}"
            )
        if array.ndim == 0 or array.shape[0] != rows:
            count = array.shape[0] if array.ndim else 0
            raise ContractViolation(
                f"{plugin} returned {count} rows for output {name!r} from a batch of {rows} rows"
            )
        if not spec.accepts_row_shape(array.shape[1:]):
            raise ContractViolation(
                f"{plugin} returned shape {list(array.shape)} for output {name!r}, "
                f"declared {list(spec.shape)}"
            )
        checked[name] = array
    return checked
