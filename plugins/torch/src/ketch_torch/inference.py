"""Batch prediction: rows to the device, one call under ``torch.inference_mode``, rows back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ketch import TensorSpec, numpy_dtype, validate_inputs
from ketch_torch.describe import output_tensors
from ketch_torch.export_shapes import guard_failure
from ketch_torch.handle import TorchModel
from ketch_torch.tensors import COMPUTE_DTYPES, from_host, to_host

__all__ = ["predict"]


def _empty(spec: TensorSpec) -> np.ndarray:
    row_shape = [0 if size < 0 else size for size in spec.row_shape]
    return np.empty((0, *row_shape), dtype=numpy_dtype(spec.datatype))


def _run(model: TorchModel, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    try:
        result = model.module(*tensors)
    except AssertionError as error:
        rejected = guard_failure(error)
        if rejected is None:
            raise
        raise rejected from None
    return output_tensors(result, model.output_keys)


def _batch_minimum(model: TorchModel) -> int:
    bounds = model.program.bounds
    return bounds.batch_minimum if bounds is not None else 0


def _run_in_chunks(
    model: TorchModel, tensors: Sequence[torch.Tensor], size: int
) -> list[torch.Tensor]:
    """Chunks of ``size`` rows, the last one padded.

    For a model exported for one batch size, or with a smallest batch.
    """
    rows = tensors[0].shape[0]
    parts: list[list[torch.Tensor]] = []
    for start in range(0, rows, size):
        chunk = [tensor[start : start + size] for tensor in tensors]
        short = size - chunk[0].shape[0]
        if short:
            chunk = [torch.cat([part, part[-1:].expand(short, *part.shape[1:])]) for part in chunk]
        outputs = _run(model, chunk)
        parts.append([output[: size - short] for output in outputs])
    return [torch.cat(pieces) for pieces in zip(*parts, strict=True)]


def predict(model: TorchModel, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One array per declared output, one row per input row, in host memory."""
    rows = validate_inputs(model.signature, inputs)
    if rows == 0:
        return {spec.name: _empty(spec) for spec in model.signature.outputs}
    device = torch.device(model.device)
    compute = COMPUTE_DTYPES[model.compute_dtype] if model.compute_dtype else None
    tensors = [from_host(inputs[spec.name], device, compute) for spec in model.signature.inputs]
    with torch.inference_mode():
        if model.fixed_batch is not None and model.fixed_batch != rows:
            outputs = _run_in_chunks(model, tensors, model.fixed_batch)
        elif rows < _batch_minimum(model):
            outputs = _run_in_chunks(model, tensors, _batch_minimum(model))
        else:
            outputs = _run(model, tensors)
        return {
            spec.name: to_host(output, spec)
            for spec, output in zip(model.signature.outputs, outputs, strict=True)
        }
