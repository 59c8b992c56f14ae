"""A cross-cutting plugin that slows a wrapper down on purpose, for tests and benchmarks.

It is registered in a ``ketch serve`` process through
``KETCH_EXTRA_PLUGINS=ketch_conformance.pacing:plugin`` (a gateway passes its
environment on to the wrappers it starts), so that it works the same whatever
the framework plugin. It reads the environment:

- ``KETCH_CONFORMANCE_LOAD_DELAY``: seconds to wait before the model loads, so
  that the suite can watch readiness while the model is not there yet;
- ``KETCH_CONFORMANCE_CONTROL``: a folder. While it holds a file ``slow`` (whose
  text is a number of seconds), every prediction first leaves a file
  ``call-<id>`` there, saying that it is in flight, then waits that long;
- ``KETCH_PACING_PREDICT_DELAY``: seconds every prediction waits first, for
  every model (``0.2``) or by model name (``weak=0.4,mlp_slow=0.2``; models not
  named are not slowed), read when the model loads. Tests and benchmarks make a
  straggler with it. The wait ends early when the call does (its caller cancelled
  it, or its deadline passed: :func:`ketch.current_call`), and the prediction is
  then not made, as a framework that can stop mid-computation would.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Final

import numpy as np

from ketch import ModelSpec, current_call, hookimpl

__all__ = [
    "CONTROL_VARIABLE",
    "LOAD_DELAY_VARIABLE",
    "PREDICT_DELAY_VARIABLE",
    "REFERENCE",
    "Pacing",
    "plugin",
    "predict_delay_for",
]

LOAD_DELAY_VARIABLE: Final = "KETCH_CONFORMANCE_LOAD_DELAY"
CONTROL_VARIABLE: Final = "KETCH_CONFORMANCE_CONTROL"
PREDICT_DELAY_VARIABLE: Final = "KETCH_PACING_PREDICT_DELAY"
SLOW_FILE: Final = "slow"
CALL_MARKER_PREFIX: Final = "call-"
REFERENCE: Final = "ketch_conformance.pacing:plugin"


def _malformed(setting: str) -> ValueError:
    return ValueError(
        f"{PREDICT_DELAY_VARIABLE}: expected SECONDS or NAME=SECONDS,..., got {setting!r}"
    )


def _seconds(text: str, setting: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise _malformed(setting) from None
    if not seconds >= 0:
        raise _malformed(setting)
    return seconds


def predict_delay_for(model: str, setting: str) -> float:
    """Seconds a prediction of ``model`` waits under ``setting`` (the variable's value).

    ``"0.2"`` slows every model; ``"weak=0.4,mlp_slow=0.2"`` the models it names.
    ValueError says what is expected when the setting is malformed.
    """
    setting = setting.strip()
    if not setting:
        return 0.0
    if "=" not in setting:
        return _seconds(setting, setting)
    delays = {}
    for item in setting.split(","):
        name, sep, seconds = item.partition("=")
        if not sep or not name.strip():
            raise _malformed(setting)
        delays[name.strip()] = _seconds(seconds, setting)
    return delays.get(model, 0.0)


class Pacing:
    """Delays loading and predictions; every hook only wraps.

    :param predict_delay: seconds every prediction waits; None (the default) reads
        ``KETCH_PACING_PREDICT_DELAY`` for the model when it loads.
    """

    def __init__(self, predict_delay: float | None = None) -> None:
        self.predict_delay = predict_delay
        self._model_delay = 0.0

    @property
    def delay(self) -> float:
        """The seconds each prediction waits now (besides the control folder's)."""
        return self._model_delay if self.predict_delay is None else self.predict_delay

    @hookimpl(wrapper=True)
    def ketch_load(self, spec: ModelSpec) -> Generator[None, object, object]:
        """Wait ``KETCH_CONFORMANCE_LOAD_DELAY`` seconds, then load; learn the model's delay."""
        time.sleep(float(os.environ.get(LOAD_DELAY_VARIABLE, "0") or 0))
        if self.predict_delay is None:
            setting = os.environ.get(PREDICT_DELAY_VARIABLE, "")
            self._model_delay = predict_delay_for(spec.name, setting)
        return (yield)

    @hookimpl(wrapper=True)
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> Generator[None, object, object]:
        """Wait the model's delay; while the control folder holds ``slow``, mark the call, wait.

        The model's delay ends when the call does (CallCancelled, and no prediction).
        """
        control = os.environ.get(CONTROL_VARIABLE)
        if control:
            slow = Path(control, SLOW_FILE)
            try:
                delay = float(slow.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                delay = 0.0
            if delay > 0:
                Path(control, f"{CALL_MARKER_PREFIX}{uuid.uuid4().hex}").touch()
                time.sleep(delay)
        if self.delay:
            call = current_call()
            if call.wait(self.delay):
                call.check("the paced prediction")
        return (yield)


plugin = Pacing()
"""The instance that ``KETCH_EXTRA_PLUGINS`` names."""
