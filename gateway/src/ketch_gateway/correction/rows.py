"""The Apps API's rows (plain JSON values) to and from a model's tensors.

A row is what one prediction takes: numbers, a nested list, or a string for a text
model. A model with several inputs takes a row as an object with one value per
input name. Outputs come back the same way: the value of the single output, or an
object of outputs by name. A row that does not fit is an InvalidValue located
within the rows (a row's index, an input's name): the route adds the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ketch import TensorSpec
from ketch_gateway.errors import InvalidValue, Location
from ketch_gateway.json_values import array_from_json, json_from_array

__all__ = ["inputs_from_rows", "rows_from_outputs"]


def _row_shape(spec: TensorSpec, first_row: Any) -> tuple[int, ...]:
    """The declared row shape, with variable dimensions read off the first row."""
    sizes: list[int] = []
    value = first_row
    for declared in spec.row_shape:
        size = len(value) if isinstance(value, list) else 0
        sizes.append(size if declared == -1 else declared)
        value = value[0] if isinstance(value, list) and value else None
    return tuple(sizes)


def _tensor(spec: TensorSpec, values: Sequence[Any], location: Location) -> np.ndarray:
    if not values:
        raise InvalidValue("expected at least one row", location)
    shape = (len(values), *_row_shape(spec, values[0]))
    try:
        return array_from_json(list(values), spec.datatype, shape)
    except InvalidValue as error:
        raise InvalidValue(
            f"{error.problem} (the model takes {spec.datatype} rows of shape "
            f"{list(spec.row_shape) or 'scalar'} for {spec.name!r})",
            (*location, *error.location),
        ) from None


def inputs_from_rows(rows: Sequence[Any], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """The input tensors for ``rows``; InvalidValue says where and what the model takes."""
    if len(specs) == 1:
        return {specs[0].name: _tensor(specs[0], rows, ())}
    names = [spec.name for spec in specs]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != set(names):
            raise InvalidValue(
                f"the model takes several inputs; send an object with "
                f"{', '.join(map(repr, names))}",
                (index,),
            )
        for name in names:
            columns[name].append(row[name])
    return {spec.name: _tensor(spec, columns[spec.name], (spec.name,)) for spec in specs}


def rows_from_outputs(outputs: Mapping[str, np.ndarray], count: int) -> list[Any]:
    """One JSON value per row: the single output's value, or an object of outputs by name."""
    per_output = {name: json_from_array(array, flat=False) for name, array in outputs.items()}
    if len(per_output) == 1:
        return list(next(iter(per_output.values())))[:count]
    return [{name: values[index] for name, values in per_output.items()} for index in range(count)]
