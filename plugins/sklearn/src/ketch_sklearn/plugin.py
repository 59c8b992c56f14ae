"""The scikit-learn framework plugin: the ``ketch`` hooks.

Registered as the entry point ``sklearn`` in the ``ketch`` group. scikit-learn
itself is imported only when a hook runs, so that discovering plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ketch import DeviceUnavailableError, ModelSpec, Signature, handles, hookimpl
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
@handles(SklearnModel)
def ketch_place(model: SklearnModel, device: str) -> SklearnModel:
    """scikit-learn runs on the CPU only: ``cpu`` works, any other device is an error."""
    if device.strip().lower() != "cpu":
        raise DeviceUnavailableError(device, DEVICES, "scikit-learn runs on the CPU only")
    return model


@hookimpl
@handles(SklearnModel)
def ketch_signature(model: SklearnModel) -> Signature:
    """The signature worked out when the model was loaded."""
    return model.signature


@hookimpl
@handles(SklearnModel)
def ketch_batch_predict(
    model: SklearnModel, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run the configured methods (``predict`` by default) on the batch."""
    from ketch_sklearn.model import predict

    return predict(model, inputs)


@hookimpl
@handles(SklearnModel)
def ketch_example_inputs(model: SklearnModel, rows: int) -> dict[str, np.ndarray] | None:
    """Sentences of a text model's vocabulary, or DataFrame columns with known categories.

    None for a matrix of numbers, which random rows fit.
    """
    from ketch_sklearn.model import sample_inputs

    return sample_inputs(model, rows)
