"""The correction policies' arithmetic, on their own, with seeded randomness."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ketch_gateway.correction import registry
from ketch_gateway.correction.answers import AnswerReader
from ketch_gateway.correction.policies import (
    IMPLEMENTATIONS,
    CorrectionPolicy,
    EpsilonGreedy,
    Exp3,
    Exp4,
    Personalized,
    Ucb1,
)
from ketch_gateway.correction.registry import PASS_THROUGH, POLICIES

MODELS = ["good", "noisy", "bad"]
CLASSES = AnswerReader("classification", 3)
RNG = np.random.default_rng(0)


def answers_for(label: int) -> dict[str, np.ndarray]:
    """The good model is right and sure, the noisy one unsure, the bad one wrong."""
    good = np.full(3, 0.05)
    good[label] = 0.9
    noisy = np.full(3, 1 / 3)
    bad = np.full(3, 0.45)
    bad[label] = 0.1
    return {"good": good, "noisy": noisy, "bad": bad}


def train(policy: CorrectionPolicy, rounds: int = 30) -> dict[str, Any]:
    state = policy.initial_state(MODELS)
    for round_ in range(rounds):
        label = round_ % 3
        state = policy.observe(state, MODELS, answers_for(label), label, None)
    return state


def test_exp4_moves_weight_to_the_model_with_the_lowest_loss() -> None:
    policy = Exp4(CLASSES)
    early = np.exp(train(policy, rounds=10)["log_weights"])
    assert early[0] > early[1] > early[2] > 0.5 * early[0]
    weights = np.exp(train(policy, rounds=200)["log_weights"])
    assert weights[0] > 0.95 * weights.sum()
    state = train(policy)
    combined = policy.combine(state, MODELS, answers_for(2), {})
    assert combined.value.argmax() == 2
    assert combined.contributors == MODELS


def test_exp4_trusts_the_accurate_model_over_the_confident_one() -> None:
    policy = Exp4(CLASSES, {"eta": 0.5})
    state = policy.initial_state(["sure", "modest"])
    for round_ in range(40):
        label = round_ % 3
        sure = np.full(3, 0.01)
        sure[label if round_ % 4 else (label + 1) % 3] = 0.98
        modest = np.full(3, 0.3)
        modest[label] = 0.4
        state = policy.observe(
            state, ["sure", "modest"], {"sure": sure, "modest": modest}, label, None
        )
    weights = np.exp(state["log_weights"])
    assert weights[1] > 100 * weights[0]


def test_exp4_confidence_falls_with_the_missing_weight() -> None:
    policy = Exp4(CLASSES)
    state = policy.initial_state(MODELS)
    answers = answers_for(1)
    stand_ins = {m: np.full(3, 1 / 3) for m in MODELS}
    full = policy.combine(state, MODELS, answers, stand_ins)
    partial = policy.combine(state, MODELS, {"good": answers["good"]}, stand_ins)
    assert partial.contributors == ["good"]
    assert partial.confidence < full.confidence
    assert partial.value.argmax() == 1


def test_exp3_learns_to_pick_the_good_model() -> None:
    policy = Exp3(CLASSES, {"gamma": 0.1})
    state = train(policy, rounds=200)
    picks = [policy.select(state, MODELS, RNG)[0] for _ in range(300)]
    assert picks.count("good") > 200


def test_exp3_with_a_played_model_updates_only_that_one() -> None:
    policy = Exp3(CLASSES)
    state = policy.initial_state(MODELS)
    good, noisy, bad = policy.observe(state, MODELS, answers_for(0), 0, "good")["log_weights"]
    assert good > noisy == bad
    # Without the played model, every model that was right (the noisy one's tie-break too) gains.
    good, noisy, bad = policy.observe(state, MODELS, answers_for(0), 0, None)["log_weights"]
    assert good == noisy > bad


def test_epsilon_greedy_exploits_the_best_and_explores_sometimes() -> None:
    policy = EpsilonGreedy(CLASSES, {"epsilon": 0.2})
    state = train(policy)
    picks = [policy.select(state, MODELS, RNG)[0] for _ in range(500)]
    share = picks.count("good") / len(picks)
    assert 0.75 < share < 0.95


def test_ucb1_tries_every_model_then_prefers_the_best() -> None:
    policy = Ucb1(CLASSES)
    state = policy.initial_state(MODELS)
    tried = []
    for round_ in range(60):
        played = policy.select(state, MODELS, RNG)[0]
        tried.append(played)
        label = round_ % 3
        state = policy.observe(state, MODELS, answers_for(label), label, played)
    assert set(tried[:3]) == set(MODELS)
    assert tried[-20:].count("good") >= 15


def test_personalized_starts_as_the_average_and_learns_a_users_twist() -> None:
    policy = Personalized(CLASSES)
    state = policy.initial_state(MODELS)
    assert policy.combine(state, MODELS, answers_for(0), {}).value.argmax() == 0
    for round_ in range(12):
        truth = round_ % 3
        twisted = 2 if truth == 0 else truth  # this user files every 0 under 2
        state = policy.observe(state, MODELS, answers_for(truth), twisted, None)
    assert policy.combine(state, MODELS, answers_for(0), {}).value.argmax() == 2
    assert policy.combine(state, MODELS, answers_for(1), {}).value.argmax() == 1
    assert policy.combine(state, MODELS, answers_for(2), {}).value.argmax() == 2


def test_personalized_regression_fits_a_linear_correction() -> None:
    policy = Personalized(AnswerReader("regression"))
    state = policy.initial_state(["a", "b"])
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, b = rng.normal(size=2)
        state = policy.observe(
            state, ["a", "b"], {"a": np.asarray(a), "b": np.asarray(b)}, 2 * a - b + 1, None
        )
    guess = policy.combine(
        state, ["a", "b"], {"a": np.asarray(0.5), "b": np.asarray(2.0)}, {}
    ).value
    assert float(guess) == pytest.approx(2 * 0.5 - 2.0 + 1, abs=0.01)


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_states_survive_json(name: str) -> None:
    policy = IMPLEMENTATIONS[name](CLASSES)
    state = train(policy, rounds=5)
    stored = json.loads(json.dumps(policy.dump(state)))
    again = policy.load(stored)
    assert policy.fits(again, MODELS)
    assert not policy.fits(again, ["good", "bad"])
    assert again["models"] == MODELS
    for key, value in state.items():
        if key != "models":
            np.testing.assert_allclose(again[key], value)


def test_unknown_and_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="policy 'exp4' has no option 'gamma'"):
        POLICIES["exp4"].check_options({"gamma": 0.1})
    with pytest.raises(ValueError, match="option 'epsilon' must be a number"):
        POLICIES["epsilon_greedy"].check_options({"epsilon": "lots"})
    assert POLICIES["exp3"].check_options({"gamma": 1}) == {"gamma": 1.0}


def test_every_learning_policy_in_the_registry_has_its_code() -> None:
    learning = {name for name, entry in POLICIES.items() if entry.learns}
    assert learning == set(IMPLEMENTATIONS)
    assert not POLICIES[PASS_THROUGH].learns
    assert all(IMPLEMENTATIONS[name].name == name for name in learning)


def test_a_policy_starts_from_its_registered_option_defaults() -> None:
    assert Exp4(CLASSES).options == {"eta": 0.05, "loss_scale": 1.0}
    assert Exp3(CLASSES, {"gamma": 0.3}).options == {"gamma": 0.3, "loss_scale": 1.0}


def test_the_registry_is_a_leaf_the_configuration_can_import() -> None:
    source = Path(registry.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
