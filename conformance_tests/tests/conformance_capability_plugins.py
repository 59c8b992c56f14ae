"""Plugins that declare the optional capabilities, each kept and each broken once.

They all load the reference plugin's softmax ``.npz`` archives (64 features, 10
classes) and serve them differently: as text, as sequences, with a bounded batch,
on an emulated accelerator, or saving what they learn. ``ketch serve`` imports them
as ``conformance_capability_plugins:NAME`` when this folder is on PYTHONPATH.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping

import numpy as np

from ketch import (
    Capabilities,
    DeviceUnavailableError,
    InvalidInputError,
    ModelSpec,
    Signature,
    TensorSpec,
    hookimpl,
    validate_inputs,
)
from ketch_conformance.reference import SoftmaxModel, SoftmaxRegressionPlugin, save_softmax

FEATURES = 64


def _declaring(model: SoftmaxModel, **changes: object) -> Signature:
    """The reference signature with some capabilities changed."""
    declared = model.signature
    capabilities = dataclasses.replace(declared.capabilities, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(declared, capabilities=capabilities)


# --- bytes: text rows hashed into the model's 64 features --------------------------------------


class TextModel(SoftmaxModel):
    """A softmax model over hashed word counts."""


def hashed_counts(texts: list[str]) -> np.ndarray:
    """Each text's words counted into FEATURES buckets by CRC32, scaled by the text's length."""
    rows = np.zeros((len(texts), FEATURES), np.float32)
    for row, text in enumerate(texts):
        words = text.split()
        for word in words:
            rows[row, zlib.crc32(word.encode()) % FEATURES] += 1.0
        rows[row] /= max(len(words), 1)
    return rows


class HashedText(SoftmaxRegressionPlugin):
    """BYTES rows of UTF-8 text; any other bytes are refused as invalid input."""

    text_signature = Signature(
        inputs=(TensorSpec("text", "BYTES", (-1,)),),
        outputs=(
            TensorSpec("probabilities", "FP32", (-1, 10)),
            TensorSpec("label", "INT64", (-1,)),
        ),
        capabilities=Capabilities(devices=("cpu",)),
        platform="numpy-hashed-text",
    )

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> SoftmaxModel | None:
        model = super().ketch_load(spec)
        if model is None:
            return None
        weights, bias = model.parameters
        text = TextModel(weights, bias)
        text.signature = self.text_signature
        return text

    @hookimpl
    def ketch_signature(self, model: object) -> Signature | None:
        return model.signature if isinstance(model, TextModel) else None

    def decode(self, rows: np.ndarray) -> list[str]:
        """The rows as text, or InvalidInputError naming the row that is not UTF-8."""
        texts = []
        for index, value in enumerate(rows.tolist()):
            try:
                texts.append(bytes(value).decode("utf-8"))
            except UnicodeDecodeError as error:
                raise InvalidInputError(f"input 'text' row {index}: not UTF-8 ({error})") from None
        return texts

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if not isinstance(model, TextModel):
            return None
        validate_inputs(model.signature, inputs)
        return model.predict(hashed_counts(self.decode(inputs["text"])))


class CrashesOnNonUtf8(HashedText):
    """Decodes without asking: bytes that are not UTF-8 raise UnicodeDecodeError."""

    def decode(self, rows: np.ndarray) -> list[str]:
        return [bytes(value).decode("utf-8") for value in rows.tolist()]


# --- variable_shapes: sequences of digit rows, averaged ----------------------------------------


class SequenceModel(SoftmaxModel):
    """A softmax model over the mean of a sequence of rows."""


class PooledSequence(SoftmaxRegressionPlugin):
    """Input FP32 [-1, -1, 64]: a sequence of any length per row, averaged over its steps."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> SoftmaxModel | None:
        model = super().ketch_load(spec)
        if model is None:
            return None
        weights, bias = model.parameters
        sequence = SequenceModel(weights, bias)
        sequence.signature = dataclasses.replace(
            _declaring(model, observe=False),
            inputs=(TensorSpec("steps", "FP32", (-1, -1, FEATURES)),),
        )
        return sequence

    def pool(self, steps: np.ndarray) -> np.ndarray:
        """The mean over the steps (zeros for a sequence of none)."""
        if steps.shape[1] == 0:
            return np.zeros((len(steps), FEATURES), np.float32)
        return np.asarray(steps.mean(axis=1), dtype=np.float32)

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if not isinstance(model, SequenceModel):
            return None
        validate_inputs(model.signature, inputs)
        return model.predict(self.pool(inputs["steps"]))


class FixedLengthSequence(PooledSequence):
    """Declares sequences of any length but works only with three steps."""

    def pool(self, steps: np.ndarray) -> np.ndarray:
        if steps.shape[1] != 3:
            raise InvalidInputError(f"input 'steps': expected 3 steps, got {steps.shape[1]}")
        return super().pool(steps)


# --- max_batch: at most eight rows a call -----------------------------------------------------


class BoundedBatch(SoftmaxRegressionPlugin):
    """Declares that a call carries at most eight rows."""

    max_batch = 8

    @hookimpl
    def ketch_signature(self, model: object) -> Signature | None:
        if not isinstance(model, SoftmaxModel):
            return None
        return _declaring(model, max_batch=self.max_batch)


class OffByOneBatch(BoundedBatch):
    """Declares eight rows but fails a batch of exactly eight."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if isinstance(model, SoftmaxModel) and len(inputs["input"]) >= self.max_batch:
            raise InvalidInputError(f"a batch holds fewer than {self.max_batch} rows")
        return super().ketch_batch_predict(model, inputs)


# --- devices: an emulated accelerator ----------------------------------------------------------


class EmulatedModel(SoftmaxModel):
    """The model "on" the emulated accelerator, computing in ``dtype``."""

    def __init__(self, inner: SoftmaxModel, dtype: str) -> None:
        weights, bias = inner.parameters
        super().__init__(weights, bias, inner.learning_rate)
        self.signature = inner.signature
        self.dtype = dtype

    def predict(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        weights, bias = self.parameters
        scores = rows.astype(self.dtype) @ weights.astype(self.dtype) + bias.astype(self.dtype)
        scores = scores.astype(np.float32)
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        probabilities = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return {
            "probabilities": probabilities,
            "label": probabilities.argmax(axis=1).astype(np.int64),
        }


class EmulatedAccelerator(SoftmaxRegressionPlugin):
    """Declares the devices ``cpu`` and ``emulated``, which computes as the CPU does."""

    devices: tuple[str, ...] = ("cpu", "emulated")
    accelerator_dtype = "float32"

    @hookimpl
    def ketch_place(self, model: object, device: str) -> SoftmaxModel | None:
        if not isinstance(model, SoftmaxModel):
            return None
        if device == "cpu":
            return model
        if device == "emulated" and "emulated" in self.devices:
            return EmulatedModel(model, self.accelerator_dtype)
        raise DeviceUnavailableError(device, ("cpu", "emulated"), "an emulated accelerator")

    @hookimpl
    def ketch_signature(self, model: object) -> Signature | None:
        if not isinstance(model, SoftmaxModel):
            return None
        return _declaring(model, devices=self.devices)


class LowPrecisionAccelerator(EmulatedAccelerator):
    """Its accelerator computes in float16, far outside the declared tolerance."""

    accelerator_dtype = "float16"


class MissingAccelerator(EmulatedAccelerator):
    """Declares ``cuda:0``, which this machine does not have."""

    devices = ("cpu", "cuda:0")


# --- observe: learning that lasts, and learning that does not ---------------------------------


class SavedModel(SoftmaxModel):
    """A softmax model that remembers the file to save itself to."""

    def __init__(self, inner: SoftmaxModel, path: str) -> None:
        weights, bias = inner.parameters
        super().__init__(weights, bias, inner.learning_rate)
        self.signature = _declaring(inner, persists_observations=True)
        self.path = path


class Persisting(SoftmaxRegressionPlugin):
    """Saves what it learnt over the model file when unloaded, and declares that it does."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> SoftmaxModel | None:
        model = super().ketch_load(spec)
        return None if model is None else SavedModel(model, spec.path)

    @hookimpl
    def ketch_unload(self, model: object) -> None:
        if isinstance(model, SavedModel):
            save_softmax(model, model.path)


class ForgetsOnRestart(Persisting):
    """Declares that it persists what it learns, and never saves."""

    @hookimpl
    def ketch_unload(self, model: object) -> None:
        return None


hashed_text = HashedText()
crashes_on_non_utf8 = CrashesOnNonUtf8()
pooled_sequence = PooledSequence()
fixed_length_sequence = FixedLengthSequence()
bounded_batch = BoundedBatch()
off_by_one_batch = OffByOneBatch()
emulated_accelerator = EmulatedAccelerator()
low_precision_accelerator = LowPrecisionAccelerator()
missing_accelerator = MissingAccelerator()
persisting = Persisting()
forgets_on_restart = ForgetsOnRestart()
