"""The scikit-learn framework plugin: the ``ketch`` hooks.

Registered as the entry point ``sklearn`` in the ``ketch`` group. scikit-learn
itself is imported only when a hook runs, so that discovering plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ketch import DeviceUnavailableError, ModelSpec, Signature, hookimpl
from ketch_sklearn.model import SklearnModel

__all__ = [
    "ketch_batch_predict",
    "ketch_example_inputs",
    "ketch_load",
    "ketch_place",
    "ketch_signature",
]

DEVICES = ("cpu",)


@hookimpl
def ketch_load(spec: ModelSpec) -> SklearnModel | None:
    """Load a skops file, or a pickle or joblib file when the spec trusts pickles."""
    from ketch_sklearn.loading import read_estimator
    from ketch_sklearn.model import describe
    from ketch_sklearn.options import SklearnOptions

    options = SklearnOptions.from_spec(spec)
    estimator = read_estimator(Path(spec.path), options)
    if estimator is None:
        return None
    return describe(estimator, options)


@hookimpl
def ketch_place(model: object, device: str) -> SklearnModel | None:
    """scikit-learn runs on the CPU only: ``cpu`` works, any other device is an error."""
    if not isinstance(model, SklearnModel):
        return None
    if device.strip().lower() != "cpu":
        raise DeviceUnavailableError(device, DEVICES, "scikit-learn runs on the CPU only")
    return model


@hookimpl
def ketch_signature(model: object) -> Signature | None:
    """The signature worked out when the model was loaded."""
    if not isinstance(model, SklearnModel):
        return None
    return model.signature


@hookimpl
def ketch_batch_predict(
    model: object, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """Run the configured methods (``predict`` by default) on the batch."""
    if not isinstance(model, SklearnModel):
        return None
    from ketch_sklearn.model import predict

    return predict(model, inputs)


@hookimpl
def ketch_example_inputs(model: object, rows: int) -> dict[str, np.ndarray] | None:
    """Sentences of a text model's vocabulary, or DataFrame columns with known categories.

    None for a matrix of numbers, which random rows fit.
    """
    if not isinstance(model, SklearnModel):
        return None
    from ketch_sklearn.model import sample_inputs

    return sample_inputs(model, rows)
