"""What the benchmarks share: batch sizes and the scenario type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["BATCH_SIZES", "Scenario", "repeat_rows"]

BATCH_SIZES = (1, 8, 64, 512)


@dataclass(frozen=True)
class Scenario:
    """A plugin, a model file and rows to send.

    ``family`` names the model when several scenarios serve the same one in other
    formats or engines, so that a report can set them side by side.
    """

    name: str
    plugin: str
    model_path: Path
    rows: Mapping[str, np.ndarray]
    options: Mapping[str, str]
    family: str = ""


def repeat_rows(rows: np.ndarray, count: int = max(BATCH_SIZES)) -> np.ndarray:
    """At least ``count`` rows, repeating ``rows`` as often as needed."""
    return np.concatenate([rows] * (count // len(rows) + 1))[:count]
