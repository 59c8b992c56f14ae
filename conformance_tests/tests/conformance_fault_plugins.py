"""Plugins that take down, stall or bloat the process they run in, to prove the suite survives.

Each is the reference softmax plugin with one fault: it exits on input of the
wrong shape, crashes the interpreter (a NULL read through ctypes) on an empty
batch, hangs on a batch of one row, or keeps 1 MiB of every call. ``ketch serve``
and the suite's worker import them as ``conformance_fault_plugins:NAME`` when this
folder is on PYTHONPATH.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Mapping

import numpy as np

from ketch import hookimpl
from ketch_conformance.reference import SoftmaxModel, SoftmaxRegressionPlugin

LEAK_BYTES = 1024 * 1024
EXIT_STATUS = 3


class ExitsOnBadInput(SoftmaxRegressionPlugin):
    """Ends the process with status 3 instead of refusing input of the wrong shape."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if isinstance(model, SoftmaxModel):
            features = model.parameters[0].shape[0]
            if np.asarray(inputs["input"]).shape[1:] != (features,):
                os._exit(EXIT_STATUS)
        return super().ketch_batch_predict(model, inputs)


class SegfaultsOnEmptyBatch(SoftmaxRegressionPlugin):
    """Reads address 0 through ctypes when a batch has no rows (a C extension's bug)."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if isinstance(model, SoftmaxModel) and len(inputs["input"]) == 0:
            ctypes.string_at(0)
        return super().ketch_batch_predict(model, inputs)


class HangsOnOneRow(SoftmaxRegressionPlugin):
    """Waits for ever on a batch of exactly one row (a lock it never gets)."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if isinstance(model, SoftmaxModel) and len(inputs["input"]) == 1:
            threading.Event().wait()
        return super().ketch_batch_predict(model, inputs)


class LeaksMemory(SoftmaxRegressionPlugin):
    """Keeps 1 MiB of scratch from every call, written so that it is really resident."""

    def __init__(self) -> None:
        self.kept: list[np.ndarray] = []

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if isinstance(model, SoftmaxModel):
            self.kept.append(np.full(LEAK_BYTES, len(self.kept) % 251, dtype=np.uint8))
        return super().ketch_batch_predict(model, inputs)


exits_on_bad_input = ExitsOnBadInput()
segfaults_on_empty_batch = SegfaultsOnEmptyBatch()
hangs_on_one_row = HangsOnOneRow()
leaks_memory = LeaksMemory()
