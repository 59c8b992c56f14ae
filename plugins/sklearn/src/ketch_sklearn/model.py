"""A loaded scikit-learn estimator, its signature, and batch prediction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ketch import (
    Capabilities,
    InvalidInputError,
    ModelLoadError,
    Signature,
    TensorSpec,
    Tolerance,
    datatype_of,
    numpy_dtype,
    validate_inputs,
)
from ketch_sklearn.inputs import InputLayout, read_layout
from ketch_sklearn.options import SklearnOptions

__all__ = ["PLATFORM", "SklearnModel", "describe", "predict", "sample_inputs"]

PLATFORM: Final = "scikit-learn"


@dataclass(frozen=True, slots=True)
class SklearnModel:
    """The plugin's handle: the estimator, how its rows arrive, what it answers."""

    estimator: Any
    methods: tuple[str, ...]
    layout: InputLayout
    signature: Signature


def _check_methods(estimator: Any, methods: tuple[str, ...]) -> None:
    from ketch_sklearn.options import METHODS

    missing = [method for method in methods if not hasattr(estimator, method)]
    if missing:
        available = [method for method in METHODS if hasattr(estimator, method)]
        raise ModelLoadError(
            f"{type(estimator).__name__} has no {', '.join(missing)}; it offers "
            f"{', '.join(available) or 'no prediction method'}"
        )


def _as_bytes(values: np.ndarray) -> np.ndarray:
    encoded = np.empty(values.shape, dtype=object)
    for index, value in np.ndenumerate(values):
        encoded[index] = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return encoded


def _output_spec(method: str, probe: np.ndarray) -> TensorSpec:
    return TensorSpec(method, datatype_of(probe.dtype), (-1, *probe.shape[1:]))


def _probe_failure(estimator: Any, method: str, layout: InputLayout, error: Exception) -> str:
    """Why the probe row failed, and what to do when the columns were guessed wrong."""
    name = type(estimator).__name__
    if layout.kind != "columns":
        shapes = ", ".join(f"{spec.name} {list(spec.shape)}" for spec in layout.specs)
        return f"{name}.{method} failed on a probe row ({shapes}): {error}"
    guessed = ",".join(f"{column.name}:{column.datatype}" for column in layout.columns)
    return (
        f"{name}.{method} failed on a probe row of its DataFrame columns, read as {guessed}: "
        f"{error}. If a column's datatype is guessed wrong, declare it with the option "
        "columns=NAME:DATATYPE,... (BYTES for strings, BOOL for booleans, FP64 or INT64 for "
        "numbers); if the estimator takes something other than a DataFrame of columns, save "
        "it as a pipeline that does (a ColumnTransformer first)"
    )


def describe(estimator: Any, options: SklearnOptions) -> SklearnModel:
    """The handle for ``estimator``: its inputs, and its outputs learnt from one probe row.

    Probing with a real prediction, rather than guessing from attributes, gets
    every estimator's output datatype and shape right (multi-output regressors,
    string labels, integer labels of any width), and checks that the inputs work.
    """
    _check_methods(estimator, options.methods)
    layout = read_layout(estimator, options)
    probe = layout.estimator_rows(layout.probe())
    outputs = []
    for method in options.methods:
        try:
            result = np.asarray(getattr(estimator, method)(probe))
        except Exception as error:
            raise ModelLoadError(_probe_failure(estimator, method, layout, error)) from error
        outputs.append(_output_spec(method, result))
    signature = Signature(
        inputs=layout.specs,
        outputs=tuple(outputs),
        capabilities=Capabilities(
            devices=("cpu",), observe=False, tolerance=Tolerance(rtol=1e-6, atol=1e-9)
        ),
        platform=PLATFORM,
    )
    return SklearnModel(estimator, options.methods, layout, signature)


def _empty(spec: TensorSpec) -> np.ndarray:
    return np.empty((0, *spec.row_shape), dtype=numpy_dtype(spec.datatype))


def predict(model: SklearnModel, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One array per configured method, one row per input row."""
    rows = validate_inputs(model.signature, inputs)
    if rows == 0:
        return {spec.name: _empty(spec) for spec in model.signature.outputs}
    batch = model.layout.estimator_rows(inputs)
    outputs: dict[str, np.ndarray] = {}
    for method, spec in zip(model.methods, model.signature.outputs, strict=True):
        try:
            result = np.asarray(getattr(model.estimator, method)(batch))
        except ValueError as error:
            raise InvalidInputError(f"scikit-learn rejected the input: {error}") from None
        if spec.datatype == "BYTES":
            result = _as_bytes(result)
        outputs[spec.name] = result
    return outputs


def sample_inputs(model: SklearnModel, rows: int) -> dict[str, np.ndarray] | None:
    """Rows the model can predict, where random rows from the signature would not do.

    Text models get sentences of their vocabulary; DataFrame columns get the
    categories their encoders know. A matrix of numbers gets None: random rows fit.
    """
    if model.layout.kind == "numeric":
        return None
    return model.layout.samples(rows, np.random.default_rng(0))
