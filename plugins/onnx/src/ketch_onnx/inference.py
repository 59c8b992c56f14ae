"""Batch prediction: numpy rows in, one onnxruntime call (or one per fixed-size piece), rows out.

ONNX strings are UTF-8 text: BYTES rows are decoded on the way in (a row that is
not UTF-8 is invalid input) and encoded on the way out.

onnxruntime can stop a run half-way (``RunOptions.terminate``): when the call
being served ends (its caller cancelled it, or its deadline passed), the run in
progress is terminated and the call answers CallCancelled instead of finishing
work nobody waits for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from ketch import (
    CallCancelled,
    InvalidInputError,
    TensorSpec,
    current_call,
    numpy_dtype,
    validate_inputs,
)
from ketch_onnx.engine import onnxruntime
from ketch_onnx.handle import OnnxModel

__all__ = ["predict"]

Feeds = dict[str, np.ndarray]
FATAL_ONLY: Final = 4


def _empty(spec: TensorSpec) -> np.ndarray:
    row_shape = [0 if size < 0 else size for size in spec.row_shape]
    return np.empty((0, *row_shape), dtype=numpy_dtype(spec.datatype))


def _text(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """BYTES rows as the str objects onnxruntime takes for a string tensor."""
    text = np.empty(array.shape, dtype=object)
    flat = text.reshape(-1)
    for index, element in enumerate(array.reshape(-1)):
        if isinstance(element, str):
            flat[index] = element
            continue
        try:
            flat[index] = bytes(element).decode("utf-8")
        except UnicodeDecodeError as error:
            row = index // max(int(np.prod(array.shape[1:])), 1)
            raise InvalidInputError(
                f"input {spec.name!r}: row {row} is not UTF-8 text ({error.reason} at byte "
                f"{error.start}); ONNX strings are UTF-8"
            ) from None
    return text


def _feed(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    if spec.datatype == "BYTES":
        return _text(spec, array)
    return np.ascontiguousarray(array)


def _answer(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """An output as the declared datatype; strings as UTF-8 bytes."""
    if spec.datatype == "BYTES":
        encoded = np.empty(array.shape, dtype=object)
        encoded.reshape(-1)[:] = [
            element.encode("utf-8") if isinstance(element, str) else bytes(element)
            for element in array.reshape(-1)
        ]
        return encoded
    wanted = numpy_dtype(spec.datatype)
    return array if array.dtype == wanted else array.astype(wanted)


def _run(model: OnnxModel, feeds: Feeds) -> list[np.ndarray]:
    """One session run, terminated if the call it serves ends first."""
    names = [spec.name for spec in model.signature.outputs]
    call = current_call()
    call.check("the ONNX run")
    run_options = onnxruntime().RunOptions()
    run_options.log_severity_level = FATAL_ONLY  # a terminated run is not an error to log

    def terminate() -> None:
        run_options.terminate = True

    call.on_cancel(terminate)
    try:
        results: list[np.ndarray] = model.session.run(names, feeds, run_options)
    except Exception:
        if call.cancelled():
            raise CallCancelled(
                f"the ONNX run was terminated: {call.reason or 'its deadline passed'}",
                expired=call.expired(),
            ) from None
        raise
    return results


def _run_in_pieces(model: OnnxModel, feeds: Feeds, rows: int, size: int) -> list[np.ndarray]:
    """For a graph exported for one batch size: pieces of that size, the last one padded."""
    parts = []
    for start in range(0, rows, size):
        piece = {name: array[start : start + size] for name, array in feeds.items()}
        short = size - min(size, rows - start)
        if short:
            piece = {
                name: np.concatenate([array, np.repeat(array[-1:], short, axis=0)])
                for name, array in piece.items()
            }
        parts.append([output[: size - short] for output in _run(model, piece)])
    return [np.concatenate(pieces) for pieces in zip(*parts, strict=True)]


def predict(model: OnnxModel, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One array per declared output, one row per input row."""
    rows = validate_inputs(model.signature, inputs)
    if rows == 0:
        return {spec.name: _empty(spec) for spec in model.signature.outputs}
    feeds = {spec.name: _feed(spec, inputs[spec.name]) for spec in model.signature.inputs}
    size = model.fixed_batch
    if size is None or size == rows:
        results = _run(model, feeds)
    else:
        results = _run_in_pieces(model, feeds, rows, size)
    return {
        spec.name: _answer(spec, result)
        for spec, result in zip(model.signature.outputs, results, strict=True)
    }
