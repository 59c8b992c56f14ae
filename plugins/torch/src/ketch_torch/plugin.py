"""The PyTorch framework plugin: the ``ketch`` hooks.

Registered as the entry point ``torch`` in the ``ketch`` group. PyTorch is
imported only when a hook runs, so that discovering plugins stays fast. ONNX
graphs are handed to ketch-onnx (:mod:`ketch_torch.onnx_graphs`), every hook of
theirs included.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ketch import ModelSpec, Signature, hookimpl
from ketch_torch.handle import TorchModel
from ketch_torch.onnx_graphs import onnx_plugin_for

__all__ = [
    "ketch_batch_predict",
    "ketch_example_inputs",
    "ketch_load",
    "ketch_place",
    "ketch_signature",
]


@hookimpl
def ketch_load(spec: ModelSpec) -> object | None:
    """Load a TorchScript file, a ``torch.export`` archive or an ONNX graph."""
    from ketch_torch.declared import declared_tensors
    from ketch_torch.formats import ONNX, detect_format
    from ketch_torch.options import TorchOptions, requested_format

    path = Path(spec.path)
    wanted = requested_format(spec)
    file_format = detect_format(path) if wanted == "auto" else wanted
    if file_format is None:
        return None
    if file_format == ONNX:
        from ketch_torch.onnx_graphs import load_onnx

        return load_onnx(spec)
    options = TorchOptions.from_spec(spec)
    declared = declared_tensors(path, options)

    import torch

    from ketch_torch.describe import describe, read_examples
    from ketch_torch.devices import resolve_device
    from ketch_torch.loading import read_program

    resolve_device(spec.device)  # fail before reading the file when the device is absent
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    examples = read_examples(options.examples) if options.examples is not None else None
    return describe(
        path,
        read_program(path, file_format),
        declared=declared,
        examples=examples,
        examples_source=str(options.examples) if options.examples is not None else None,
        compute_dtype=None if options.dtype == "auto" else options.dtype,
    )


@hookimpl
def ketch_place(model: object, device: str) -> object | None:
    """Move the module to ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, in the compute dtype."""
    if not isinstance(model, TorchModel):
        onnx = onnx_plugin_for(model)
        return onnx.ketch_place(model=model, device=device) if onnx else None
    from ketch_torch.placement import place

    return place(model, device)


@hookimpl
def ketch_signature(model: object) -> Signature | None:
    """The signature settled when the model was loaded."""
    if not isinstance(model, TorchModel):
        onnx = onnx_plugin_for(model)
        return onnx.ketch_signature(model=model) if onnx else None
    return model.signature


@hookimpl
def ketch_batch_predict(
    model: object, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """Run the module on the batch, on its device, and return the outputs in host memory."""
    if not isinstance(model, TorchModel):
        onnx = onnx_plugin_for(model)
        return onnx.ketch_batch_predict(model=model, inputs=inputs) if onnx else None
    from ketch_torch.inference import predict

    return predict(model, inputs)


@hookimpl
def ketch_example_inputs(model: object, rows: int) -> dict[str, np.ndarray] | None:
    """Rows inside the sizes a ``torch.export`` program accepts; None for other formats.

    They are the archive's own example inputs (repeated with a little noise past their
    count), or random values in shapes inside every dimension's range.
    """
    if not isinstance(model, TorchModel) or model.program.bounds is None:
        return None
    from ketch import InvalidInputError, validate_inputs
    from ketch_torch.export_shapes import sample_rows

    examples = model.program.examples
    if examples is not None:
        try:
            validate_inputs(model.signature, examples)
        except InvalidInputError:  # inputs declared otherwise than the archive records
            examples = None
    return sample_rows(model.signature.inputs, model.program.bounds, examples, rows)
