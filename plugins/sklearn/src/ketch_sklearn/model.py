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
from ketch_sklearn.options import SklearnOptions

__all__ = ["PLATFORM", "SklearnModel", "describe", "predict"]

PLATFORM: Final = "scikit-learn"
TEXT_VECTORIZERS: Final = ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")


@dataclass(frozen=True, slots=True)
class SklearnModel:
    """The plugin's handle: the estimator and what it was configured to answer."""

    estimator: Any
    methods: tuple[str, ...]
    text_input: bool
    signature: Signature

    @property
    def input_spec(self) -> TensorSpec:
        """The single input tensor."""
        return self.signature.inputs[0]


def _first_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    while steps:
        estimator = steps[0][1]
        steps = getattr(estimator, "steps", None)
    return estimator


def takes_text(estimator: Any) -> bool:
    """Whether the estimator (or its pipeline's first step) is a text vectorizer."""
    from sklearn.feature_extraction import text

    vectorizers = tuple(getattr(text, name) for name in TEXT_VECTORIZERS)
    return isinstance(_first_step(estimator), vectorizers)


def _check_methods(estimator: Any, methods: tuple[str, ...]) -> None:
    from ketch_sklearn.options import METHODS

    missing = [method for method in methods if not hasattr(estimator, method)]
    if missing:
        available = [method for method in METHODS if hasattr(estimator, method)]
        raise ModelLoadError(
            f"{type(estimator).__name__} has no {', '.join(missing)}; it offers "
            f"{', '.join(available) or 'no prediction method'}"
        )


def _feature_count(estimator: Any, options: SklearnOptions) -> int:
    if options.n_features is not None:
        return options.n_features
    count = getattr(estimator, "n_features_in_", None)
    if count is None:
        raise ModelLoadError(
            f"cannot tell how many features a row of {type(estimator).__name__} has "
            "(it records no n_features_in_); set the option n_features"
        )
    return int(count)


def _as_bytes(values: np.ndarray) -> np.ndarray:
    encoded = np.empty(values.shape, dtype=object)
    for index, value in np.ndenumerate(values):
        encoded[index] = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return encoded


def _output_spec(method: str, probe: np.ndarray) -> TensorSpec:
    return TensorSpec(method, datatype_of(probe.dtype), (-1, *probe.shape[1:]))


def _probe_row(input_spec: TensorSpec, text_input: bool) -> np.ndarray:
    if text_input:
        return np.array([b"probe"], dtype=object)
    return np.zeros((1, *input_spec.row_shape), dtype=numpy_dtype(input_spec.datatype))


def describe(estimator: Any, options: SklearnOptions) -> SklearnModel:
    """The handle for ``estimator``: its input, and its outputs learnt from one probe row.

    Probing with a real prediction, rather than guessing from attributes, gets
    every estimator's output datatype and shape right (multi-output regressors,
    string labels, integer labels of any width).
    """
    _check_methods(estimator, options.methods)
    if options.input_kind == "auto":
        text_input = takes_text(estimator)
    else:
        text_input = options.input_kind == "text"
    if text_input:
        input_spec = TensorSpec(options.input_name, "BYTES", (-1,))
    else:
        n_features = _feature_count(estimator, options)
        input_spec = TensorSpec(options.input_name, options.input_datatype, (-1, n_features))
    probe = _probe_row(input_spec, text_input)
    outputs = []
    for method in options.methods:
        try:
            result = np.asarray(getattr(estimator, method)(_rows(probe, text_input)))
        except Exception as error:
            raise ModelLoadError(
                f"{type(estimator).__name__}.{method} failed on a probe row of shape "
                f"{list(probe.shape)}: {error}"
            ) from error
        outputs.append(_output_spec(method, result))
    signature = Signature(
        inputs=(input_spec,),
        outputs=tuple(outputs),
        capabilities=Capabilities(
            devices=("cpu",), observe=False, tolerance=Tolerance(rtol=1e-6, atol=1e-9)
        ),
        platform=PLATFORM,
    )
    return SklearnModel(estimator, options.methods, text_input, signature)


def _rows(batch: np.ndarray, text_input: bool) -> Any:
    if not text_input:
        return batch
    try:
        return [
            value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in batch
        ]
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"a text row is not valid UTF-8: {error}") from None


def _empty(spec: TensorSpec) -> np.ndarray:
    return np.empty((0, *spec.row_shape), dtype=numpy_dtype(spec.datatype))


def predict(model: SklearnModel, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One array per configured method, one row per input row."""
    rows = validate_inputs(model.signature, inputs)
    if rows == 0:
        return {spec.name: _empty(spec) for spec in model.signature.outputs}
    batch = _rows(inputs[model.input_spec.name], model.text_input)
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
