"""The conformance suite, run on the vw plugin for each kind of model and input it serves.

Every model learns online, so each target also gives labels to learn, and says how far
predictions are from them where the suite's default measure does not fit VW's outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from vw_test_models import ACTIONS, TrainedModel, bandit_row, best_action, texts_of

from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc

__all__ = ["TestInProcess", "TestOverGrpc"]

BANDIT_USERS = 4


def class_error(outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float:
    """One minus the probability of the label; VW numbers classes from 1."""
    probabilities = outputs["probabilities"]
    return float(np.mean(1.0 - probabilities[np.arange(len(labels)), labels - 1]))


def logistic_error(outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float:
    """The logistic loss of the raw score against labels of -1 and 1."""
    margins = -labels * outputs["score"].astype(np.float64)
    return float(np.mean(np.logaddexp(0.0, margins)))


def expected_cost(outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float:
    """The cost the served probabilities expect for the logged (action, cost, p) labels."""
    actions = labels[:, 0].astype(np.int64)
    chosen = outputs["probabilities"][np.arange(len(labels)), actions]
    return float(np.mean(chosen * labels[:, 1]))


def bandit_lessons() -> tuple[np.ndarray, np.ndarray]:
    """Every action for a few users, with costs that prefer another action than training did."""
    users = np.repeat(np.arange(BANDIT_USERS), ACTIONS)
    actions = np.tile(np.arange(ACTIONS), BANDIT_USERS)
    preferred = np.array([(best_action(int(user)) + 1) % ACTIONS for user in users])
    costs = (actions != preferred).astype(np.float64)
    labels = np.column_stack([actions, costs, np.full(len(users), 1.0 / ACTIONS)])
    return texts_of(bandit_row(int(user)) for user in users), labels


@pytest.fixture(
    scope="module", params=["digits-dense", "regression-text", "binary-text", "bandit-text"]
)
def ketch_target(
    request: pytest.FixtureRequest,
    vw_models: dict[str, TrainedModel],
    tmp_path_factory: pytest.TempPathFactory,
) -> ConformanceTarget:
    name, kind = str(request.param).split("-")
    model = vw_models[name].copy_to(Path(tmp_path_factory.mktemp(f"conformance-{name}")))
    test = model.test.take(slice(0, 12))
    if kind == "dense":
        return ConformanceTarget(
            "vw",
            model.path,
            options={"input": "dense", "n_features": str(test.rows.shape[1])},
            sample_inputs={"input": test.rows},
            sample_labels=test.labels,
            prediction_error=class_error,
        )
    if name == "bandit":
        texts, labels = bandit_lessons()
        return ConformanceTarget(
            "vw",
            model.path,
            options={"actions": str(ACTIONS)},
            sample_inputs={"input": texts},
            sample_labels=labels,
            prediction_error=expected_cost,
        )
    return ConformanceTarget(
        "vw",
        model.path,
        sample_inputs={"input": test.texts},
        sample_labels=test.labels,
        prediction_error=logistic_error if name == "binary" else None,
    )
