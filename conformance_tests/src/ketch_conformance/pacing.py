"""A cross-cutting plugin that slows a wrapper down on purpose, for the lifecycle checks.

The suite registers it in a ``ketch serve`` process it starts, through
``KETCH_EXTRA_PLUGINS=ketch_conformance.pacing:plugin``, so that it works the same
whatever the framework plugin. It reads the environment at each call:

- ``KETCH_CONFORMANCE_LOAD_DELAY``: seconds to wait before the model loads, so
  that the suite can watch readiness while the model is not there yet;
- ``KETCH_CONFORMANCE_CONTROL``: a folder. While it holds a file ``slow`` (whose
  text is a number of seconds), every prediction first leaves a file
  ``call-<id>`` there, saying that it is in flight, then waits that long.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Final

import numpy as np

from ketch import ModelSpec, hookimpl

__all__ = ["CONTROL_VARIABLE", "LOAD_DELAY_VARIABLE", "REFERENCE", "Pacing", "plugin"]

LOAD_DELAY_VARIABLE: Final = "KETCH_CONFORMANCE_LOAD_DELAY"
CONTROL_VARIABLE: Final = "KETCH_CONFORMANCE_CONTROL"
SLOW_FILE: Final = "slow"
CALL_MARKER_PREFIX: Final = "call-"
REFERENCE: Final = "ketch_conformance.pacing:plugin"


class Pacing:
    """Delays loading and, on request, predictions; every hook only wraps."""

    @hookimpl(wrapper=True)
    def ketch_load(self, spec: ModelSpec) -> Generator[None, object, object]:
        """Wait ``KETCH_CONFORMANCE_LOAD_DELAY`` seconds, then load."""
        time.sleep(float(os.environ.get(LOAD_DELAY_VARIABLE, "0") or 0))
        return (yield)

    @hookimpl(wrapper=True)
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> Generator[None, object, object]:
        """While the control folder holds ``slow``: mark the call as in flight, then wait."""
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
        return (yield)


plugin = Pacing()
"""The instance that ``KETCH_EXTRA_PLUGINS`` names."""
