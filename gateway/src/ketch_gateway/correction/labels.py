"""How large a feedback label may be: no larger than one row of the model's answer.

Feedback is stored, so an unbounded label lets one client grow the store without
limit. A label is held to the size of what the model it teaches answers for one
row: at most as many values as the model's largest output row (a variable
dimension counts as up to :data:`VARIABLE_DIMENSION_VALUES` values), nested no
deeper than that row, and text values of at most :data:`MAX_TEXT_CHARACTERS`
characters. A model with several outputs may be labelled with an object of
outputs by name, each held to its own output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from ketch import TensorSpec
from ketch_gateway.errors import InvalidValue

__all__ = ["MAX_TEXT_CHARACTERS", "VARIABLE_DIMENSION_VALUES", "check_label_size"]

VARIABLE_DIMENSION_VALUES: Final = 1024
"""The values a variable dimension of an output row counts for."""
MAX_TEXT_CHARACTERS: Final = 4096
"""The longest text value a label may hold."""
UNKNOWN_SIGNATURE: Final = TensorSpec("output", "BYTES", (-1, VARIABLE_DIMENSION_VALUES))
"""The bound used while the model's signature is not known yet."""


def _row_values(spec: TensorSpec) -> int:
    return math.prod(VARIABLE_DIMENSION_VALUES if d < 0 else d for d in spec.row_shape)


def _measure(label: Any) -> tuple[int, int, int]:
    """Values, nesting depth and the longest text (keys included) of a label."""
    values, depth, longest = 0, 0, 0
    stack: list[tuple[Any, int]] = [(label, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            longest = max([longest, *map(len, value)])
            value = list(value.values())
        if isinstance(value, list):
            depth = max(depth, level + 1)
            stack.extend((item, level + 1) for item in value)
            continue
        values += 1
        if isinstance(value, str):
            longest = max(longest, len(value))
    return values, depth, longest


def _check(label: Any, spec: TensorSpec, model: str, location: tuple[str, ...]) -> None:
    values, depth, longest = _measure(label)
    allowed = max(_row_values(spec), 1)
    if values > allowed:
        raise InvalidValue(
            f"{values} values; a row of model {model!r}'s {spec.name!r} has at most {allowed}",
            location,
        )
    if depth > max(len(spec.row_shape), 1):
        raise InvalidValue(
            f"nested {depth} deep; a row of model {model!r}'s {spec.name!r} has "
            f"{len(spec.row_shape)} dimension(s)",
            location,
        )
    if longest > MAX_TEXT_CHARACTERS:
        raise InvalidValue(
            f"a text value of {longest} characters; at most {MAX_TEXT_CHARACTERS}", location
        )


def check_label_size(label: Any, outputs: Sequence[TensorSpec] | None, model: str) -> None:
    """InvalidValue (located in the label) when ``label`` is larger than a row of the answer.

    ``outputs`` is the model's signature's outputs, or None while it is not known.
    """
    specs = list(outputs) if outputs else [UNKNOWN_SIGNATURE]
    by_name = {spec.name: spec for spec in specs}
    if isinstance(label, dict) and len(specs) > 1:
        for key, value in label.items():
            spec = by_name.get(key)
            if spec is None:
                raise InvalidValue(
                    f"unknown output {key!r}; model {model!r} has {', '.join(map(repr, by_name))}"
                )
            _check(value, spec, model, (key,))
        return
    largest = max(specs, key=lambda spec: (_row_values(spec), len(spec.row_shape)))
    _check(label, largest, model, ())
