"""The Vowpal Wabbit framework plugin: the ``ketch`` hooks.

Registered as the entry point ``vw`` in the ``ketch`` group. ``vowpalwabbit`` itself
is imported only when a model loads, so that discovering plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ketch import DeviceUnavailableError, ModelSpec, Signature, hookimpl
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
def ketch_place(model: object, device: str) -> VwModel | None:
    """VW runs on the CPU only: ``cpu`` works, any other device is an error."""
    if not isinstance(model, VwModel):
        return None
    if device.strip().lower() != "cpu":
        raise DeviceUnavailableError(device, DEVICES, "Vowpal Wabbit runs on the CPU only")
    return model


@hookimpl
def ketch_signature(model: object) -> Signature | None:
    """The signature worked out when the model was loaded."""
    if not isinstance(model, VwModel):
        return None
    return model.signature


@hookimpl
def ketch_batch_predict(
    model: object, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """Predict every row on its own; predicting never teaches the model."""
    if not isinstance(model, VwModel):
        return None
    return model.predict(inputs)


@hookimpl
def ketch_observe(
    model: object, inputs: Mapping[str, np.ndarray], labels: np.ndarray
) -> bool | None:
    """Learn from labelled rows, one VW update per row, in order."""
    if not isinstance(model, VwModel):
        return None
    return model.learn(inputs, labels)


@hookimpl
def ketch_example_inputs(model: object, rows: int) -> dict[str, np.ndarray] | None:
    """Rows the model can predict: dense rows, or VW text examples for its task."""
    if not isinstance(model, VwModel):
        return None
    from ketch_vw.samples import sample_rows

    return sample_rows(model.info, model.options, rows)


@hookimpl
def ketch_unload(model: object) -> None:
    """Save what the model learnt since its last save, then release it."""
    if isinstance(model, VwModel):
        model.close()
