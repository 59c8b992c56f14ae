"""Wrappers that each break one rule of the contract, to prove the suite catches it.

Each is the reference softmax plugin with one hook changed. ``ketch serve`` imports
them as ``broken_plugins:NAME`` when this folder is on PYTHONPATH.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import numpy as np

from ketch import InvalidInputError, ModelSpec, Signature, TensorSpec, hookimpl, validate_inputs
from ketch_conformance.reference import SoftmaxModel, SoftmaxRegressionPlugin


class ReorderRows(SoftmaxRegressionPlugin):
    """Answers in reverse order."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        outputs = super().ketch_batch_predict(model, inputs)
        return None if outputs is None else {name: array[::-1] for name, array in outputs.items()}


class DropRow(SoftmaxRegressionPlugin):
    """Loses the last row of any batch of two or more."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        outputs = super().ketch_batch_predict(model, inputs)
        if outputs is None:
            return None
        return {name: array[:-1] if len(array) > 1 else array for name, array in outputs.items()}


class MixRows(SoftmaxRegressionPlugin):
    """Centres each batch on its own mean, so that rows affect each other."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        rows = inputs["input"]
        centred = rows - rows.mean(axis=0, keepdims=True) if len(rows) else rows
        return super().ketch_batch_predict(model, {"input": centred.astype(np.float32)})


class WrongDatatype(SoftmaxRegressionPlugin):
    """Declares FP64 probabilities but returns FP32."""

    @hookimpl
    def ketch_signature(self, model: object) -> Signature | None:
        if not isinstance(model, SoftmaxModel):
            return None
        declared = model.signature
        probabilities = TensorSpec("probabilities", "FP64", declared.outputs[0].shape)
        return Signature(
            declared.inputs,
            (probabilities, declared.outputs[1]),
            declared.capabilities,
            declared.platform,
        )


class IgnoresDevice(SoftmaxRegressionPlugin):
    """Accepts any device and stays on the CPU."""

    @hookimpl
    def ketch_place(self, model: object, device: str) -> SoftmaxModel | None:
        return model if isinstance(model, SoftmaxModel) else None


class CrashesOnBadInput(SoftmaxRegressionPlugin):
    """Skips validation: a wrong shape surfaces as whatever numpy raises."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if not isinstance(model, SoftmaxModel):
            return None
        return model.predict(inputs["input"])


class VagueError(SoftmaxRegressionPlugin):
    """Rejects bad input with a message that says nothing useful."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if not isinstance(model, SoftmaxModel):
            return None
        if inputs["input"].shape[1:] != (model.parameters[0].shape[0],):
            raise InvalidInputError("bad request")
        return model.predict(inputs["input"])


class EmptyBatchFails(SoftmaxRegressionPlugin):
    """Cannot answer a batch of zero rows."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if len(inputs["input"]) == 0:
            raise ValueError("zero-size array to reduction operation maximum which has no identity")
        return super().ketch_batch_predict(model, inputs)


reorder_rows = ReorderRows()
drop_row = DropRow()
mix_rows = MixRows()
wrong_datatype = WrongDatatype()
ignores_device = IgnoresDevice()
crashes_on_bad_input = CrashesOnBadInput()
vague_error = VagueError()
empty_batch_fails = EmptyBatchFails()


class Nondeterministic(SoftmaxRegressionPlugin):
    """Adds fresh noise to every answer, like dropout left on at serving time."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        outputs = super().ketch_batch_predict(model, inputs)
        if outputs is None:
            return None
        noise = np.random.default_rng().normal(0.0, 1e-3, outputs["probabilities"].shape)
        return {**outputs, "probabilities": (outputs["probabilities"] + noise).astype(np.float32)}


class NotThreadSafe(SoftmaxRegressionPlugin):
    """Keeps the batch in a field that all calls share, and pauses before reading it back."""

    def __init__(self) -> None:
        self.batch: np.ndarray | None = None

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if not isinstance(model, SoftmaxModel):
            return None
        validate_inputs(model.signature, inputs)
        self.batch = inputs["input"]
        time.sleep(0.002)  # lets the other threads run, as real work that releases the GIL does
        return model.predict(self.batch)


class WritesInputs(SoftmaxRegressionPlugin):
    """Scales its input in place before predicting."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if not isinstance(model, SoftmaxModel):
            return None
        validate_inputs(model.signature, inputs)
        rows = inputs["input"]
        np.clip(rows, 0.0, 0.5, out=rows)
        return model.predict(rows)


class ReusesOutputs(SoftmaxRegressionPlugin):
    """Writes every answer into one preallocated buffer and returns views of it."""

    def __init__(self) -> None:
        self.buffer = np.zeros((4096, 10), np.float32)

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        outputs = super().ketch_batch_predict(model, inputs)
        if outputs is None:
            return None
        rows = len(outputs["probabilities"])
        self.buffer[:rows] = outputs["probabilities"]
        return {**outputs, "probabilities": self.buffer[:rows]}


class TruncatesLargeBatches(SoftmaxRegressionPlugin):
    """Has room for 512 rows: the rows after those get the answers of the first ones."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        outputs = super().ketch_batch_predict(model, inputs)
        if outputs is None:
            return None
        index = np.arange(len(outputs["label"])) % 512
        return {name: array[index] for name, array in outputs.items()}


class ThreadLocalSettings(SoftmaxRegressionPlugin):
    """Keeps a setting in thread-local storage, set only in the thread that loaded the model.

    Calls from that thread use it; calls from the wrapper's worker threads do not.
    """

    def __init__(self) -> None:
        self.settings = threading.local()

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> SoftmaxModel | None:
        self.settings.temperature = 0.5
        return super().ketch_load(spec)

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if not isinstance(model, SoftmaxModel):
            return None
        validate_inputs(model.signature, inputs)
        temperature = getattr(self.settings, "temperature", 1.0)
        return model.predict(inputs["input"] / np.float32(temperature))


nondeterministic = Nondeterministic()
not_thread_safe = NotThreadSafe()
writes_inputs = WritesInputs()
reuses_outputs = ReusesOutputs()
truncates_large_batches = TruncatesLargeBatches()
thread_local_settings = ThreadLocalSettings()
