"""Wrappers that each break one rule of the contract, to prove the suite catches it.

Each is the reference softmax plugin with one hook changed. ``ketch serve`` imports
them as ``broken_plugins:NAME`` when this folder is on PYTHONPATH.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ketch import InvalidInputError, Signature, TensorSpec, hookimpl
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
