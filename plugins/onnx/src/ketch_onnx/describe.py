"""A graph's signature, read from its onnxruntime session, checked by one probe batch.

Every input's and output's first dimension is the batch. A symbolic dimension
(a name, or no size at all) is ``-1``. A graph whose inputs fix the first dimension to
a number was exported for that batch size only.

onnxruntime reports the names, element types and shapes it resolved when it built the
session, its own shape inference included, so the ``onnx`` package is not needed here.
It reports no dimensions both for a scalar and for a value of unknown rank: an input
without dimensions cannot be served (Ketch needs its rank, batch first), and an output
without dimensions takes the rank of the probe's answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from ketch import (
    VARIABLE,
    Capabilities,
    ModelLoadError,
    Signature,
    TensorSpec,
    Tolerance,
    numpy_dtype,
)
from ketch_onnx.elements import datatype_of_element, tensor_element
from ketch_onnx.handle import PLATFORM, OnnxModel
from ketch_onnx.options import OnnxOptions

__all__ = ["PROBE_ROWS", "TOLERANCES", "describe", "probe_inputs"]

PROBE_ROWS: Final = 2
TOLERANCES: Final[dict[str, Tolerance]] = {
    "float32": Tolerance(rtol=1e-4, atol=1e-5),
    "float16": Tolerance(rtol=1e-2, atol=1e-3),
}
"""How far a row's outputs may move with the rest of its batch (kernels block rows
differently for different batch sizes), by the precision the graph computes in."""


def _declared(value: Any, kind: str, path: Path) -> tuple[str, list[int]]:
    """A session input's or output's datatype and sizes (-1 where symbolic or unknown).

    ``value`` is onnxruntime's ``NodeArg``: a name, a type name, a shape of sizes,
    symbolic names and Nones.
    """
    where = f"{path}: {kind} {value.name!r}"
    datatype = datatype_of_element(tensor_element(value.type, where), where)
    return datatype, [size if isinstance(size, int) else VARIABLE for size in value.shape]


def _fixed_batch(path: Path, batches: dict[str, int]) -> int | None:
    fixed = {name: size for name, size in batches.items() if size != VARIABLE}
    sizes = set(fixed.values())
    if len(sizes) > 1:
        listed = ", ".join(f"{name} {size}" for name, size in fixed.items())
        raise ModelLoadError(f"{path}: the inputs fix different batch sizes ({listed})")
    return sizes.pop() if sizes else None


def probe_inputs(inputs: Sequence[TensorSpec], rows: int) -> dict[str, np.ndarray]:
    """``rows`` rows of zeros (empty strings for BYTES), variable sizes set to 1."""
    probe = {}
    for spec in inputs:
        shape = (rows, *[1 if size == VARIABLE else size for size in spec.row_shape])
        if spec.datatype == "BYTES":
            array = np.empty(shape, dtype=object)
            array.fill(b"")
        else:
            array = np.zeros(shape, dtype=numpy_dtype(spec.datatype))
        probe[spec.name] = array
    return probe


def _inputs(path: Path, session: Any) -> tuple[tuple[TensorSpec, ...], int | None]:
    """The inputs' specs, and the batch size they fix (None: any)."""
    inputs, batches = [], {}
    for value in session.get_inputs():
        datatype, dims = _declared(value, "input", path)
        if not dims:
            raise ModelLoadError(
                f"{path}: input {value.name!r} declares no dimensions (a scalar, or no shape "
                "at all); Ketch needs its rank, the batch dimension first"
            )
        inputs.append(TensorSpec(value.name, datatype, (VARIABLE, *dims[1:])))
        batches[value.name] = dims[0]
    if not inputs:
        raise ModelLoadError(f"{path}: the graph takes no inputs")
    return tuple(inputs), _fixed_batch(path, batches)


def _outputs(path: Path, session: Any) -> tuple[tuple[TensorSpec, ...], set[str]]:
    """The outputs' specs, and the names of those of unknown rank (a row of one size, for now)."""
    specs, unknown = [], set()
    for value in session.get_outputs():
        datatype, dims = _declared(value, "output", path)
        if not dims:
            unknown.add(value.name)
        row = dims[1:] if dims else [VARIABLE]
        specs.append(TensorSpec(value.name, datatype, (VARIABLE, *row)))
    return tuple(specs), unknown


def _probe(handle: OnnxModel) -> dict[str, np.ndarray]:
    """The outputs for one batch of zeros; ModelLoadError unless each has a row per input row."""
    from ketch_onnx.inference import predict

    rows = handle.fixed_batch or PROBE_ROWS
    probe = probe_inputs(handle.signature.inputs, rows)
    try:
        results = predict(handle, probe)
    except Exception as error:
        shapes = ", ".join(f"{name} {list(array.shape)}" for name, array in probe.items())
        raise ModelLoadError(
            f"{handle.path}: the graph failed on a probe batch ({shapes}): {error}"
        ) from error
    for name, result in results.items():
        if result.ndim == 0 or result.shape[0] != rows:
            raise ModelLoadError(
                f"{handle.path}: output {name!r} has shape {list(result.shape)} for a probe "
                f"batch of {rows} rows; Ketch needs one output row per input row"
            )
    return results


def describe(
    path: Path,
    options: OnnxOptions,
    session: Any,
    devices: tuple[str, ...],
    as_exported: bool = True,
) -> OnnxModel:
    """The handle for ``session``: the signature it reports, checked by one probe call.

    ``as_exported`` says whether the session runs the file as it is, or a graph that
    :mod:`ketch_onnx.graph` changed (placing it elsewhere then changes it again). An
    output of unknown rank takes the probe's rank, every size but the batch variable.
    """
    inputs, fixed_batch = _inputs(path, session)
    outputs, unknown_rank = _outputs(path, session)
    computes_in_half = options.dtype == "float16" or any(s.datatype == "FP16" for s in outputs)
    capabilities = Capabilities(
        devices=devices,
        max_batch=fixed_batch if options.fixed_batch == "max_batch" else None,
        tolerance=TOLERANCES["float16" if computes_in_half else "float32"],
    )
    signature = Signature(inputs, outputs, capabilities, PLATFORM)
    handle = OnnxModel(path, options, session, signature, fixed_batch, as_exported)
    results = _probe(handle)
    if not unknown_rank:
        return handle
    settled = tuple(
        TensorSpec(spec.name, spec.datatype, (VARIABLE,) * results[spec.name].ndim)
        if spec.name in unknown_rank
        else spec
        for spec in outputs
    )
    signature = Signature(inputs, settled, capabilities, PLATFORM)
    return OnnxModel(path, options, session, signature, fixed_batch, as_exported)
