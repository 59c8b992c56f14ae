"""Tiny models for the conformance suite: ``ketch conformance lightgbm`` needs no model file.

Registered in the entry-point group ``ketch.conformance``, so the suite loads this
module (and with it lightgbm) only when it checks this plugin. The plugin's own
tests use the same factories.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import lightgbm
import numpy as np
import pytest

from ketch_conformance import ConformanceTarget
from ketch_conformance.factory_hooks import TargetFactory

__all__ = [
    "FEATURES",
    "TASKS",
    "make_data",
    "pytest_ketch_conformance_targets",
    "target_factory",
    "train",
]

FEATURES: Final = 6
SAMPLE_ROWS: Final = 16
TASKS: Final[dict[str, dict[str, str | int]]] = {
    "binary": {"objective": "binary"},
    "multiclass": {"objective": "multiclass", "num_class": 3},
    "regression": {"objective": "regression"},
}


def make_data(task: str, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of FEATURES normal numbers, and labels for ``task`` that depend on a few of them."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(rows, FEATURES))
    score = data[:, 0] + 0.5 * data[:, 1] - data[:, 2] * data[:, 3]
    if task == "binary":
        return data, (score > 0).astype(np.int64)
    if task == "multiclass":
        return data, np.digitize(score, [-0.5, 0.5]).astype(np.int64)
    return data, score + rng.normal(0.0, 0.1, size=rows)


def train(task: str, folder: Path) -> Path:
    """Train a small booster for ``task`` on generated rows and save it in ``folder``."""
    data, labels = make_data(task, rows=400, seed=1)
    parameters = {**TASKS[task], "num_leaves": 7, "verbosity": -1, "num_threads": 1, "seed": 1}
    booster = lightgbm.train(parameters, lightgbm.Dataset(data, labels), num_boost_round=12)
    path = folder / f"{task}.txt"
    booster.save_model(str(path))
    return path


def target_factory(task: str) -> Callable[[Path], ConformanceTarget]:
    """Builds the target for ``task`` in a folder: a trained model and rows with a NaN."""

    def build(folder: Path) -> ConformanceTarget:
        rows, _ = make_data(task, rows=SAMPLE_ROWS, seed=2)
        rows[3, 1] = np.nan  # LightGBM's missing value: a row the model must still answer
        return ConformanceTarget("lightgbm", train(task, folder), sample_inputs={"input": rows})

    return build


def pytest_ketch_conformance_targets(
    plugin: str, config: pytest.Config
) -> Mapping[str, TargetFactory] | None:
    """One target per task, for the plugin named ``lightgbm``."""
    if plugin != "lightgbm":
        return None
    return {task: target_factory(task) for task in TASKS}
