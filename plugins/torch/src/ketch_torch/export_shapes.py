"""What a ``torch.export`` program says about the sizes it accepts, and rows that fit them.

An exported program records each input's shape with symbols for its dynamic
dimensions (``Dim("h", min=16, max=512)`` becomes a symbol ranging over 16 to
512; ``2 * Dim("seq")`` an expression in one) and the range of every symbol and
expression in ``range_constraints``. From these the plugin publishes each bounded
dimension as a :class:`ketch.DimensionRange` (so that clients see it and a call
outside it is refused with its name), bounds the batch, and makes sample rows
inside the ranges. The ``Dim`` names themselves are not saved in the archive: a
dimension that several inputs share carries the symbol's name (``s20``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ketch import DimensionRange, InvalidInputError, TensorSpec, numpy_dtype

__all__ = [
    "ExportBounds",
    "guard_failure",
    "read_bounds",
    "sample_rows",
]

PREFERRED_SIZE: Final = 8
"""The size sample rows give a dimension whose range allows it (else the nearest bound)."""
GUARD_PREFIX: Final = "Guard failed: "


@dataclass(frozen=True)
class ExportBounds:
    """The sizes an exported program accepts.

    ``ranges`` holds, per input in the program's order, one entry per dimension
    (None: fixed, the batch, or unbounded); ``batch_minimum`` and ``batch_maximum``
    bound the rows of one call; ``sample_shapes`` are row shapes, per input in order,
    inside every range and consistent with the relations between dimensions
    (``2 * seq``).
    """

    ranges: tuple[tuple[DimensionRange | None, ...], ...]
    batch_minimum: int
    batch_maximum: int | None
    sample_shapes: tuple[tuple[int, ...], ...]


def _whole(value: Any) -> int | None:
    """A sympy bound as an int; None for infinity."""
    return int(value) if getattr(value, "is_Integer", False) else None


def _bounds_of(expr: Any, constraints: Mapping[Any, Any]) -> tuple[int, int | None]:
    found = constraints.get(expr)
    if found is None:
        return 0, None
    return max(_whole(found.lower) or 0, 0), _whole(found.upper)


def _expressions(value: Any) -> list[Any]:
    """Each dimension of a fake tensor: an int, or the sympy expression of a dynamic size."""
    return [size if isinstance(size, int) else size.node.expr for size in value.shape]


def _sample_size(minimum: int, maximum: int | None) -> int:
    size = max(minimum, PREFERRED_SIZE)
    return size if maximum is None else min(size, maximum)


def _sample_shapes(
    shapes: Sequence[list[Any]], constraints: Mapping[Any, Any]
) -> tuple[tuple[int, ...], ...]:
    """Row shapes that give each free symbol a size inside its range, expressions following."""
    chosen: dict[Any, int] = {}
    for dims in shapes:
        for dim in dims[1:]:
            if isinstance(dim, int):
                continue
            for symbol in dim.free_symbols:
                if symbol not in chosen:
                    chosen[symbol] = _sample_size(*_bounds_of(symbol, constraints))
    return tuple(
        tuple(dim if isinstance(dim, int) else int(dim.subs(chosen)) for dim in dims[1:])
        for dims in shapes
    )


def read_bounds(values: Sequence[Any], constraints: Any) -> ExportBounds:
    """The bounds of an exported program's inputs (``values``: their fake tensors, in order)."""
    shapes = [_expressions(value) for value in values]
    shared = Counter(dim for dims in shapes for dim in dims[1:] if not isinstance(dim, int))
    ranges: list[tuple[DimensionRange | None, ...]] = []
    batch_minimum, batch_maximum = 0, None
    for dims in shapes:
        per_axis: list[DimensionRange | None] = [None]
        for dim in dims[1:]:
            if isinstance(dim, int):
                per_axis.append(None)
                continue
            minimum, maximum = _bounds_of(dim, constraints)
            label = str(dim) if shared[dim] > 1 and dim.is_Symbol else ""
            bounded = minimum > 0 or maximum is not None or label
            per_axis.append(DimensionRange(minimum, maximum, label) if bounded else None)
        ranges.append(tuple(per_axis) if any(per_axis) else ())
        if dims and not isinstance(dims[0], int):
            low, high = _bounds_of(dims[0], constraints)
            batch_minimum = max(batch_minimum, low)
            if high is not None:
                batch_maximum = high if batch_maximum is None else min(batch_maximum, high)
    return ExportBounds(
        tuple(ranges), batch_minimum, batch_maximum, _sample_shapes(shapes, constraints)
    )


def _column(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dtype = numpy_dtype(spec.datatype)
    if spec.datatype == "BOOL":
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def sample_rows(
    inputs: Sequence[TensorSpec],
    bounds: ExportBounds,
    examples: Mapping[str, np.ndarray] | None,
    rows: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``rows`` rows inside the bounds, for ``inputs`` in the program's order.

    They are the archive's own examples, repeated with a little noise so that
    repeated rows differ, or random values in the sample shapes; integers are
    drawn from 0 and 1, which any index or mask takes.
    """
    rng = np.random.default_rng(seed)
    if examples is not None:
        count = len(next(iter(examples.values())))
        picks = np.arange(rows) % count
        sampled = {}
        for spec in inputs:
            column = examples[spec.name][picks]
            if column.dtype.kind == "f" and rows > count:
                repeat = (np.arange(rows) // count).reshape(-1, *[1] * (column.ndim - 1))
                noise = rng.standard_normal(column.shape).astype(column.dtype)
                column = (column + (repeat > 0) * 0.01 * noise).astype(column.dtype)
            sampled[spec.name] = column
        return sampled
    return {
        spec.name: _column(spec, (rows, *shape), rng)
        for spec, shape in zip(inputs, bounds.sample_shapes, strict=True)
    }


def guard_failure(error: BaseException) -> InvalidInputError | None:
    """The caller's fault in an exported program's own shape check, or None for another error.

    An exported module checks its inputs against the program's constraints before it
    runs, and raises ``AssertionError("Guard failed: ...")`` when they do not hold:
    the input is wrong, not the model.
    """
    message = str(error)
    if not isinstance(error, AssertionError) or not message.startswith(GUARD_PREFIX):
        return None
    condition = message[len(GUARD_PREFIX) :].strip()
    return InvalidInputError(
        f"the exported program's shape constraints do not hold for this input: {condition}"
    )
