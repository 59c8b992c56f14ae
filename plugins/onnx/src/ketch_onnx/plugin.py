"""The ONNX framework plugin: the ``ketch`` hooks, on onnxruntime.

Registered as the entry point ``onnx`` in the ``ketch`` group. onnx and
onnxruntime are imported only when a hook runs, so that discovering plugins
stays fast. The PyTorch plugin calls these same functions for ``.onnx`` files
(``ketch serve torch model.onnx``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ketch import ModelSpec, Signature, handles, hookimpl
from ketch_onnx.handle import OnnxModel

__all__ = [
    "ketch_batch_predict",
    "ketch_load",
    "ketch_place",
    "ketch_signature",
]


@hookimpl
def ketch_load(spec: ModelSpec) -> OnnxModel | None:
    """Load an ONNX graph into an onnxruntime session; None for a file that is not ONNX."""
    from ketch_onnx.loading import is_onnx_file, load_graph
    from ketch_onnx.options import OnnxOptions

    options = OnnxOptions.from_spec(spec)
    path = Path(spec.path)
    if not is_onnx_file(path):
        return None
    return load_graph(path, options)


@hookimpl
@handles(OnnxModel)
def ketch_place(model: OnnxModel, device: str) -> OnnxModel:
    """Run the graph on ``cpu``, ``cuda`` or ``cuda:N`` (onnxruntime's CUDA provider)."""
    from ketch_onnx.placement import place

    return place(model, device)


@hookimpl
@handles(OnnxModel)
def ketch_signature(model: OnnxModel) -> Signature:
    """The signature the graph declares, settled when it was loaded."""
    return model.signature


@hookimpl
@handles(OnnxModel)
def ketch_batch_predict(
    model: OnnxModel, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run the graph on the batch."""
    from ketch_onnx.inference import predict

    return predict(model, inputs)
