"""Rows to predict: the target's own, or random ones that fit the signature."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ketch import VARIABLE, Signature, TensorSpec, numpy_dtype

__all__ = [
    "SAMPLE_ROWS",
    "VARIABLE_DIMENSION_SIZE",
    "random_inputs",
    "take_rows",
    "variable_size",
]

SAMPLE_ROWS = 12
VARIABLE_DIMENSION_SIZE = 3
_WORDS = (
    "fast",
    "model",
    "serving",
    "batch",
    "cache",
    "latency",
    "digit",
    "seven",
    "quiet",
    "river",
    "green",
    "query",
    "answer",
    "stone",
    "light",
    "paper",
    "ketch",
    "sail",
    "wind",
    "harbour",
)


def variable_size(spec: TensorSpec, axis: int) -> int:
    """The size random rows give variable dimension ``axis``: 3, or the nearest its range takes."""
    bounds = spec.range_of(axis)
    if bounds is None:
        return VARIABLE_DIMENSION_SIZE
    size = max(VARIABLE_DIMENSION_SIZE, bounds.minimum)
    return size if bounds.maximum is None else min(size, bounds.maximum)


def _random_tensor(spec: TensorSpec, rows: int, rng: np.random.Generator) -> np.ndarray:
    row_shape = tuple(
        variable_size(spec, axis) if size == VARIABLE else size
        for axis, size in enumerate(spec.row_shape, start=1)
    )
    shape = (rows, *row_shape)
    if spec.datatype == "BYTES":
        count = int(np.prod(shape))
        sentences = [
            " ".join(rng.choice(_WORDS, size=int(rng.integers(2, 8)))).encode()
            for _ in range(count)
        ]
        array = np.empty(count, dtype=object)
        array[:] = sentences
        return array.reshape(shape)
    dtype = numpy_dtype(spec.datatype)
    if spec.datatype == "BOOL":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        return rng.integers(0, 16, size=shape).astype(dtype)
    return rng.uniform(0.0, 16.0, size=shape).astype(dtype)


def random_inputs(
    signature: Signature, rows: int = SAMPLE_ROWS, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random rows for every input: numbers in [0, 16), short sentences for BYTES.

    Variable dimensions take size 3, or the nearest size their declared range takes.
    """
    rng = np.random.default_rng(seed)
    return {spec.name: _random_tensor(spec, rows, rng) for spec in signature.inputs}


def take_rows(
    inputs: Mapping[str, np.ndarray], index: slice | np.ndarray | list[int]
) -> dict[str, np.ndarray]:
    """The same rows of every input."""
    return {name: np.ascontiguousarray(array[index]) for name, array in inputs.items()}
