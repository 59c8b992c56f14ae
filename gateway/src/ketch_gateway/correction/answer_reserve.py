"""How long before its latency objective an app stops waiting for models.

After the wait, the app still has to combine what arrived, encode the answer and
send it, and the event loop may be busy with other requests when the wait's timer
fires; uvloop's clock also ticks in whole milliseconds. So an app stops waiting a
reserve before the objective, and learns the reserve from its own answers: the
99th percentile of how long answering took after a wait that ran to its end,
plus one clock tick, kept between a floor and a fifth of the objective.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import numpy as np

__all__ = ["AnswerReserve"]

FLOOR_S: Final = 0.002
CLOCK_TICK_S: Final = 0.001
WINDOW: Final = 256
REFRESH_EVERY: Final = 16


class AnswerReserve:
    """A reserve learned from recent overruns of one app's waits."""

    def __init__(self, objective_s: float) -> None:
        self.ceiling_s = objective_s / 5
        self.floor_s = min(FLOOR_S, self.ceiling_s)
        self.seconds = self.floor_s
        self._overruns: deque[float] = deque(maxlen=WINDOW)
        self._since_refresh = 0

    def record(self, overrun_s: float) -> None:
        """How long answering took after a wait that ran until its cut-off."""
        self._overruns.append(max(overrun_s, 0.0))
        self._since_refresh += 1
        if self._since_refresh >= REFRESH_EVERY:
            self._since_refresh = 0
            learned = float(np.percentile(self._overruns, 99)) + CLOCK_TICK_S
            self.seconds = min(self.ceiling_s, max(self.floor_s, learned))
