"""Plugins that break the rules of a wrapper's life: readiness, shutdown, resources, learning.

Each is the reference softmax plugin with one hook changed. ``ketch serve``
imports them as ``conformance_lifecycle_plugins:NAME`` when this folder is on
PYTHONPATH.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from ketch import ModelSpec, hookimpl
from ketch_conformance.reference import SoftmaxModel, SoftmaxRegressionPlugin

LOADING_SECONDS = 2.0


class LoadingModel(SoftmaxModel):
    """A model whose weights arrive from a background thread, some time after load returns."""

    def __init__(self, inner: SoftmaxModel) -> None:
        weights, bias = inner.parameters
        super().__init__(weights, bias, inner.learning_rate)
        self.loaded = threading.Event()
        threading.Thread(target=self._finish_loading, daemon=True).start()

    def _finish_loading(self) -> None:
        time.sleep(LOADING_SECONDS)
        self.loaded.set()

    def predict(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        if not self.loaded.is_set():
            raise RuntimeError("the model is still loading")
        return super().predict(rows)


class ReadyTooEarly(SoftmaxRegressionPlugin):
    """Returns from ketch_load at once and loads the weights in the background."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> SoftmaxModel | None:
        model = super().ketch_load(spec)
        return None if model is None else LoadingModel(model)


class HangsOnSigterm(SoftmaxRegressionPlugin):
    """Starts a background thread that is not a daemon and never ends."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> SoftmaxModel | None:
        model = super().ketch_load(spec)
        if model is not None:
            threading.Thread(target=threading.Event().wait, name="refresher").start()
        return model


class DropsCallsOnSigterm(SoftmaxRegressionPlugin):
    """With the option ``own_sigterm_handler``, installs a SIGTERM handler that exits at once."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> SoftmaxModel | None:
        if spec.flag("own_sigterm_handler"):
            signal.signal(signal.SIGTERM, lambda number, frame: os._exit(0))
        return super().ketch_load(spec)


class LeaksThreads(SoftmaxRegressionPlugin):
    """Starts a thread per call that waits until :meth:`release` (a wrapper never calls it)."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def release(self) -> None:
        """End the leaked threads."""
        self.released.set()

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        threading.Thread(target=self.released.wait, daemon=True).start()
        return super().ketch_batch_predict(model, inputs)


class LeaksFiles(SoftmaxRegressionPlugin):
    """Opens a file per call and keeps it open until :meth:`release`."""

    def __init__(self) -> None:
        self.files: list[IO[Any]] = []

    def release(self) -> None:
        """Close the leaked files."""
        for file in self.files:
            file.close()
        self.files.clear()

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        self.files.append(open(os.devnull, "rb"))  # noqa: SIM115
        return super().ketch_batch_predict(model, inputs)


class ObserveDoesNothing(SoftmaxRegressionPlugin):
    """Says the model changed, and leaves it as it was."""

    @hookimpl
    def ketch_observe(
        self, model: object, inputs: Mapping[str, np.ndarray], labels: np.ndarray
    ) -> bool | None:
        return True if isinstance(model, SoftmaxModel) else None


class ObserveMovesAway(SoftmaxRegressionPlugin):
    """Steps up the loss instead of down: the gradient's sign is wrong."""

    @hookimpl
    def ketch_observe(
        self, model: object, inputs: Mapping[str, np.ndarray], labels: np.ndarray
    ) -> bool | None:
        if not isinstance(model, SoftmaxModel):
            return None
        model.learning_rate = -abs(model.learning_rate)
        return super().ketch_observe(model, inputs, labels)


ready_too_early = ReadyTooEarly()
hangs_on_sigterm = HangsOnSigterm()
drops_calls_on_sigterm = DropsCallsOnSigterm()
leaks_threads = LeaksThreads()
leaks_files = LeaksFiles()
observe_does_nothing = ObserveDoesNothing()
observe_moves_away = ObserveMovesAway()
