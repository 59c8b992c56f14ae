"""The Vowpal Wabbit framework plugin: the ``ketch`` hooks.

Registered as the entry point ``vw`` in the ``ketch`` group. ``vowpalwabbit`` itself
is imported only when a model loads, so that discovering plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ketch import DeviceUnavailableError, ModelSpec, Signature, handles, hookimpl
from ketch_vw.model import VwModel

__all__ = [
    "ketch_batch_predict",
    "ketch_example_inputs",
    "ketch_load",
    "ketch_observe",
    "ketch_place",
    "ketch_signature",
    "ketch_unload",
]

DEVICES = ("cpu",)


@hookimpl
def ketch_load(spec: ModelSpec) -> VwModel | None:
    """Load a VW model file with its training arguments; None for a file that is not VW's."""
    from ketch_vw.loading import load_model

    return load_model(spec)


@hookimpl
@handles(VwModel)
def ketch_place(model: VwModel, device: str) -> VwModel:
    """VW runs on the CPU only: ``cpu`` works, any other device is an error."""
    if device.strip().lower() != "cpu":
        raise DeviceUnavailableError(device, DEVICES, "Vowpal Wabbit runs on the CPU only")
    return model


@hookimpl
@handles(VwModel)
def ketch_signature(model: VwModel) -> Signature:
    """The signature worked out when the model was loaded."""
    return model.signature


@hookimpl
@handles(VwModel)
def ketch_batch_predict(model: VwModel, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Predict every row on its own; predicting never teaches the model."""
    return model.predict(inputs)


@hookimpl
@handles(VwModel)
def ketch_observe(model: VwModel, inputs: Mapping[str, np.ndarray], labels: np.ndarray) -> bool:
    """Learn from labelled rows, one VW update per row, in order."""
    return model.learn(inputs, labels)


@hookimpl
@handles(VwModel)
def ketch_example_inputs(model: VwModel, rows: int) -> dict[str, np.ndarray]:
    """Rows the model can predict: dense rows, or VW text examples for its task."""
    from ketch_vw.samples import sample_rows

    return sample_rows(model.info, model.options, rows)


@hookimpl
@handles(VwModel)
def ketch_unload(model: VwModel) -> None:
    """Save what the model learnt since its last save, then release it."""
    model.close()
