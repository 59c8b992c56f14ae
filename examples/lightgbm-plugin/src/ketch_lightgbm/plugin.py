"""The LightGBM framework plugin: the ``ketch`` hooks.

Registered as the entry point ``lightgbm`` in the ``ketch`` group. Discovery
imports this module in every ``ketch serve``, whatever its plugin, so lightgbm
itself is imported only inside the hooks, when a model loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import numpy as np

from ketch import DeviceUnavailableError, ModelSpec, Signature, hookimpl

if TYPE_CHECKING:
    from ketch_lightgbm.model import LightGBMModel

__all__ = ["ketch_batch_predict", "ketch_load", "ketch_place", "ketch_signature"]

DEVICES: Final = ("cpu",)


def _ours(model: object) -> LightGBMModel | None:
    """``model`` when it is this plugin's handle, else None."""
    from ketch_lightgbm.model import LightGBMModel

    return model if isinstance(model, LightGBMModel) else None


@hookimpl
def ketch_load(spec: ModelSpec) -> LightGBMModel | None:
    """Load a LightGBM text model file; None for a file that is not one."""
    from ketch_lightgbm.loading import load_model

    return load_model(spec)


@hookimpl
def ketch_place(model: object, device: str) -> LightGBMModel | None:
    """LightGBM predicts on the CPU: ``cpu`` works, any other device is a clear error."""
    ours = _ours(model)
    if ours is None:
        return None
    if device.strip().lower() != "cpu":
        raise DeviceUnavailableError(device, DEVICES, "LightGBM predicts on the CPU only")
    return ours


@hookimpl
def ketch_signature(model: object) -> Signature | None:
    """The signature worked out when the model loaded."""
    ours = _ours(model)
    return None if ours is None else ours.signature


@hookimpl
def ketch_batch_predict(
    model: object, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """One row of every output per input row, in order."""
    ours = _ours(model)
    return None if ours is None else ours.predict(inputs)
