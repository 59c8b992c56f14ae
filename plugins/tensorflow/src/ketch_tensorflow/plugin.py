"""The TensorFlow framework plugin: the ``ketch`` hooks.

Registered as the entry point ``tensorflow`` in the ``ketch`` group. TensorFlow
is imported only when a hook runs (quietly, see :mod:`ketch_tensorflow.importing`),
so that discovering plugins stays fast for every other framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ketch import ModelSpec, Signature, handles, hookimpl
from ketch_tensorflow.model import TensorFlowModel

__all__ = [
    "ketch_batch_predict",
    "ketch_load",
    "ketch_place",
    "ketch_signature",
]


@hookimpl
def ketch_load(spec: ModelSpec) -> TensorFlowModel | None:
    """Load a SavedModel directory or a Keras 3 ``.keras`` file onto the spec's device.

    A device that does not exist is left for ``ketch_place`` to refuse: the model
    then loads on the CPU.
    """
    from ketch import DeviceUnavailableError
    from ketch_tensorflow.devices import CPU, resolve_device
    from ketch_tensorflow.importing import tensorflow
    from ketch_tensorflow.loading import model_format
    from ketch_tensorflow.model import load_model
    from ketch_tensorflow.options import TensorFlowOptions

    path = Path(spec.path)
    if model_format(path) is None:
        return None
    options = TensorFlowOptions.from_spec(spec)
    tensorflow(quiet=options.quiet)
    try:
        device = resolve_device(spec.device)
    except DeviceUnavailableError:
        device = CPU
    return load_model(path, options, device)


@hookimpl
@handles(TensorFlowModel)
def ketch_place(model: TensorFlowModel, device: str) -> TensorFlowModel:
    """Run the model under ``device`` (``cpu``, ``gpu``, ``gpu:N``, ``cuda:N``).

    A model loaded on another device is loaded again on this one, so that its
    variables live there and its function is traced for it.
    """
    from ketch_tensorflow.devices import resolve_device
    from ketch_tensorflow.model import load_model

    target = resolve_device(device)
    if target == model.device:
        return model
    placed = load_model(model.path, model.options, target)
    assert placed is not None  # the same files loaded a moment ago
    return placed


@hookimpl
@handles(TensorFlowModel)
def ketch_signature(model: TensorFlowModel) -> Signature:
    """The signature read from the model's own; logs the start-up time the first time."""
    from ketch_tensorflow.startup import report_startup

    report_startup(model.load_seconds)
    return model.signature


@hookimpl
@handles(TensorFlowModel)
def ketch_batch_predict(
    model: TensorFlowModel, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run the model's serving function on the batch."""
    from ketch_tensorflow.model import predict

    return predict(model, inputs)
