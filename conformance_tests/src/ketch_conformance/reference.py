"""A reference framework plugin: softmax regression in numpy, with online learning.

It is the smallest plugin that keeps every rule of the contract, so the suite
can prove itself on it (and on broken variants of it), and framework authors can
read a whole plugin in one screen. Serve one with
``ketch serve ketch_conformance.reference:plugin model.npz``.

A model file is an ``.npz`` archive with ``weights`` (features by classes) and
``bias`` (classes), both float32.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ketch import (
    Capabilities,
    DeviceUnavailableError,
    InvalidInputError,
    ModelLoadError,
    ModelSpec,
    Signature,
    TensorSpec,
    Tolerance,
    hookimpl,
    validate_inputs,
    validate_labels,
)

__all__ = ["SoftmaxModel", "SoftmaxRegressionPlugin", "fit_softmax", "plugin", "save_softmax"]

DEVICES = ("cpu",)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float32)


class SoftmaxModel:
    """Weights and bias, swapped atomically so predictions never see half an update."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, learning_rate: float = 0.05) -> None:
        self.parameters = (weights.astype(np.float32), bias.astype(np.float32))
        self.learning_rate = learning_rate
        self._update_lock = threading.Lock()
        n_features, n_classes = weights.shape
        self.signature = Signature(
            inputs=(TensorSpec("input", "FP32", (-1, n_features)),),
            outputs=(
                TensorSpec("probabilities", "FP32", (-1, n_classes)),
                TensorSpec("label", "INT64", (-1,)),
            ),
            capabilities=Capabilities(
                devices=DEVICES, observe=True, tolerance=Tolerance(rtol=1e-5, atol=1e-6)
            ),
            platform="numpy-softmax",
        )

    def predict(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Class probabilities and the most probable class per row."""
        weights, bias = self.parameters
        probabilities = _softmax(rows @ weights + bias)
        return {
            "probabilities": probabilities,
            "label": probabilities.argmax(axis=1).astype(np.int64),
        }

    def learn(self, rows: np.ndarray, labels: np.ndarray) -> bool:
        """One gradient step on the cross-entropy of the labelled rows."""
        with self._update_lock:
            weights, bias = self.parameters
            probabilities = _softmax(rows @ weights + bias)
            probabilities[np.arange(len(labels)), labels] -= 1.0
            gradient = probabilities / max(len(labels), 1)
            step = self.learning_rate
            self.parameters = (
                (weights - step * rows.T @ gradient).astype(np.float32),
                (bias - step * gradient.sum(axis=0)).astype(np.float32),
            )
        return len(labels) > 0


def fit_softmax(
    rows: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    epochs: int = 200,
    learning_rate: float = 0.05,
) -> SoftmaxModel:
    """A model trained by full-batch gradient descent (rows scaled to about [0, 1] train best)."""
    rows = rows.astype(np.float32)
    model = SoftmaxModel(
        np.zeros((rows.shape[1], n_classes), np.float32),
        np.zeros(n_classes, np.float32),
        learning_rate,
    )
    for _ in range(epochs):
        model.learn(rows, labels.astype(np.int64))
    return model


def save_softmax(model: SoftmaxModel, path: str | Path) -> Path:
    """Write the model as an ``.npz`` archive; the path written."""
    weights, bias = model.parameters
    path = Path(path)
    with path.open("wb") as file:
        np.savez(file, weights=weights, bias=bias)
    return path


class SoftmaxRegressionPlugin:
    """The hooks, as methods, so that tests can subclass it to break one rule at a time."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> SoftmaxModel | None:
        """Load an ``.npz`` archive with ``weights`` and ``bias``."""
        if not spec.path.endswith(".npz"):
            return None
        try:
            with np.load(spec.path) as archive:
                weights, bias = archive["weights"], archive["bias"]
        except (OSError, KeyError, ValueError) as error:
            raise ModelLoadError(f"{spec.path} is not a softmax model archive: {error}") from error
        if weights.ndim != 2 or bias.shape != (weights.shape[1],):
            raise ModelLoadError(
                f"{spec.path}: weights {list(weights.shape)} and bias {list(bias.shape)} do not fit"
            )
        rate = float(spec.option("learning_rate", "0.05") or 0.05)
        return SoftmaxModel(weights, bias, rate)

    @hookimpl
    def ketch_place(self, model: object, device: str) -> SoftmaxModel | None:
        """Numpy runs on the CPU only."""
        if not isinstance(model, SoftmaxModel):
            return None
        if device != "cpu":
            raise DeviceUnavailableError(device, DEVICES, "numpy runs on the CPU only")
        return model

    @hookimpl
    def ketch_signature(self, model: object) -> Signature | None:
        """Input, outputs and capabilities."""
        return model.signature if isinstance(model, SoftmaxModel) else None

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        """Probabilities and labels, one row per input row."""
        if not isinstance(model, SoftmaxModel):
            return None
        validate_inputs(model.signature, inputs)
        return model.predict(inputs["input"])

    @hookimpl
    def ketch_observe(
        self, model: object, inputs: Mapping[str, np.ndarray], labels: np.ndarray
    ) -> bool | None:
        """One gradient step towards the labels."""
        if not isinstance(model, SoftmaxModel):
            return None
        rows = validate_inputs(model.signature, inputs)
        validate_labels(labels, rows)
        n_classes = model.signature.outputs[0].shape[1]
        if labels.dtype.kind not in "iu" or labels.ndim != 1:
            raise InvalidInputError(f"labels: expected integer class indices, got {labels.dtype}")
        if rows and (labels.min() < 0 or labels.max() >= n_classes):
            raise InvalidInputError(f"labels: class indices must be in [0, {n_classes})")
        return model.learn(inputs["input"], labels.astype(np.int64))


plugin = SoftmaxRegressionPlugin()
"""The plugin object that ``ketch serve ketch_conformance.reference:plugin`` registers."""
