"""Plugins for the SDK's own tests, importable by ``ketch serve`` through PYTHONPATH.

They build on the reference softmax plugin and add what a test needs to watch
the runtime: a slow load, slow predictions, and a marker file that says a call
has started.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ketch import (
    EXTRA_VARIABLE,
    DimensionRange,
    ModelSpec,
    Signature,
    TensorSpec,
    WrapperProcess,
    hookimpl,
    start_wrapper,
    validate_inputs,
)
from ketch_conformance import pacing
from ketch_conformance.reference import SoftmaxModel, SoftmaxRegressionPlugin

REFERENCE_PLUGIN = "ketch_conformance.reference:plugin"
SLOW_PLUGIN = "sdk_test_plugins:slow"
WINDOW_PLUGIN = "sdk_test_plugins:window"


HOLD_LIMIT_S = 60.0


class SlowSoftmaxModel(SoftmaxModel):
    """A softmax model that sleeps before answering and leaves a marker when called."""

    def __init__(self, inner: SoftmaxModel, spec: ModelSpec) -> None:
        weights, bias = inner.parameters
        super().__init__(weights, bias, inner.learning_rate)
        self.predict_delay = float(spec.option("predict_delay", "0") or 0)
        self.marker = spec.option("marker")
        self.unloaded = spec.option("unloaded")
        self.calls = spec.option("calls")
        self.hold = spec.option("hold")

    def called(self) -> None:
        """Leave the marker, and a file of its own for this call in the ``calls`` folder."""
        if self.marker:
            Path(self.marker).touch()
        if self.calls:
            Path(self.calls, f"call-{uuid.uuid4().hex}").touch()

    def held(self) -> None:
        """Wait while the ``hold`` file exists (a minute at most)."""
        until = time.monotonic() + HOLD_LIMIT_S
        while self.hold and Path(self.hold).exists() and time.monotonic() < until:
            time.sleep(0.01)


class SlowSoftmaxPlugin(SoftmaxRegressionPlugin):
    """Options: ``load_delay`` and ``predict_delay`` (seconds), ``marker`` (a file to touch
    when a prediction starts), ``calls`` (a folder where each prediction leaves a file),
    ``hold`` (a file: predictions wait while it exists), ``unloaded`` (a file to write
    when the model is unloaded)."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> SoftmaxModel | None:
        model = super().ketch_load(spec)
        if model is None:
            return None
        time.sleep(float(spec.option("load_delay", "0") or 0))
        return SlowSoftmaxModel(model, spec)

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if isinstance(model, SlowSoftmaxModel):
            model.called()
            model.held()
            time.sleep(model.predict_delay)
        return super().ketch_batch_predict(model, inputs)

    @hookimpl
    def ketch_unload(self, model: object) -> None:
        if isinstance(model, SlowSoftmaxModel) and model.unloaded:
            Path(model.unloaded).write_text("unloaded after the calls in flight\n")


slow = SlowSoftmaxPlugin()


@contextlib.contextmanager
def stalled_wrapper(
    model_path: Path, folder: Path, env: Mapping[str, str], name: str = "digits"
) -> Iterator[tuple[WrapperProcess, Path, Path]]:
    """``ketch serve`` of the slow plugin with one worker thread, paced a minute per prediction.

    Yields the process, the ``calls`` folder where the framework plugin (called after
    the pacing) leaves a file per prediction, and the pacing's ``control`` folder,
    where each paced call leaves a file as it starts.
    """
    calls, control = folder / "calls", folder / "control"
    calls.mkdir()
    control.mkdir()
    (control / pacing.SLOW_FILE).write_text("0.001")
    paced = {
        **env,
        EXTRA_VARIABLE: pacing.REFERENCE,
        pacing.PREDICT_DELAY_VARIABLE: "60",
        pacing.CONTROL_VARIABLE: str(control),
    }
    with start_wrapper(
        SLOW_PLUGIN,
        model_path,
        name=name,
        options={"calls": str(calls)},
        extra_args=["--workers", "1"],
        env=paced,
        echo_stderr=False,
    ) as process:
        yield process, calls, control


class CountingWrapper:
    """A cross-cutting plugin: counts batch_predict calls and the rows they carry."""

    def __init__(self) -> None:
        self.calls = 0
        self.rows = 0

    @hookimpl(wrapper=True)
    def ketch_batch_predict(self, model: object, inputs: Mapping[str, np.ndarray]) -> object:
        self.calls += 1
        self.rows += len(next(iter(inputs.values())))
        return (yield)


counting = CountingWrapper()
"""A shared instance, for ``KETCH_EXTRA_PLUGINS=sdk_test_plugins:counting``."""


class MisspeltHook(SoftmaxRegressionPlugin):
    """A framework plugin with a typo in one hook name."""

    def ketch_bach_predict(self, model: object, inputs: Mapping[str, np.ndarray]) -> None:
        return None


class NoPredict:
    """A framework plugin that forgot ketch_batch_predict."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> object:
        return object()

    @hookimpl
    def ketch_place(self, model: object, device: str) -> object:
        return model

    @hookimpl
    def ketch_signature(self, model: object) -> None:
        return None


class WindowModel:
    """A weighted sum over a window of ``steps`` values, whose size is bounded."""

    def __init__(self, minimum: int, maximum: int) -> None:
        steps = DimensionRange(minimum, maximum, name="steps")
        self.signature = Signature(
            inputs=(
                TensorSpec("series", "FP32", (-1, -1), (None, steps)),
                TensorSpec("weights", "FP32", (-1, -1), (None, steps)),
            ),
            outputs=(TensorSpec("total", "FP32", (-1,)),),
        )


class WindowPlugin:
    """Serves ``*.window`` files: JSON with the ``min`` and ``max`` window sizes."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> WindowModel | None:
        if not spec.path.endswith(".window"):
            return None
        document = json.loads(Path(spec.path).read_text())
        return WindowModel(document["min"], document["max"])

    @hookimpl
    def ketch_place(self, model: object, device: str) -> object | None:
        return model if isinstance(model, WindowModel) else None

    @hookimpl
    def ketch_signature(self, model: object) -> Signature | None:
        return model.signature if isinstance(model, WindowModel) else None

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if not isinstance(model, WindowModel):
            return None
        validate_inputs(model.signature, inputs)
        return {"total": (inputs["series"] * inputs["weights"]).sum(axis=1, dtype=np.float32)}


window = WindowPlugin()
"""Bounded window sizes, published in the model's metadata."""
