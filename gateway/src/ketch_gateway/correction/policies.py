"""Correction policies: which models to ask, how their answers become one, how feedback teaches.

Every policy has three steps over a state it owns: ``select`` (the models to
query for this app and user), ``combine`` (one answer from the answers that
arrived) and ``observe`` (learn from a labelled example, given every model's
answer for its input). States are per app and per user; a user's state starts
as a copy of the app's shared one, and feedback updates both. States are plain
Python objects in memory and JSON in the state store (``dump`` and ``load``).

- ``exp3``: picks one model at random by weight (Auer et al.'s Exp3); a model's
  weight grows with the reward it earns when it was the one picked.
- ``exp4``: asks every model and averages their answers by weight; weights
  shrink exponentially with each model's loss (Clipper's ensemble).
- ``epsilon_greedy``: the model with the best average reward, or, with
  probability epsilon, any.
- ``ucb1``: the model with the best upper confidence bound on its reward.
- ``personalized``: Velox's split model: a linear model per user over every
  model's answer (class probabilities, or values), trained online by SGD
  (classification) or recursive least squares (regression), starting from an
  app-wide model that every user's feedback also trains.

A model's reward is 1 when its top class is the label, else 0 (classification),
or ``1 - min(1, (error / loss_scale) ** 2)`` (regression). Correctness, not the
probability given to the label: a probability reward favours the most confident
model over the most accurate one, and the answer a caller gets is the top class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ketch_gateway.correction.answers import AnswerReader
from ketch_gateway.correction.registry import POLICIES

__all__ = [
    "IMPLEMENTATIONS",
    "Combined",
    "CorrectionPolicy",
    "EpsilonGreedy",
    "Exp3",
    "Exp4",
    "Personalized",
    "Ucb1",
    "correction_policy",
]

State = dict[str, Any]


@dataclass(frozen=True)
class Combined:
    """One row's answer: probabilities (or a value), a confidence, and who contributed."""

    value: np.ndarray
    confidence: float
    contributors: list[str]


class CorrectionPolicy:
    """The three steps, over a state; subclasses define them.

    ``name`` is the policy's entry in the registry, which holds its options' defaults.
    """

    name: ClassVar[str]
    queries_every_model: ClassVar[bool] = False

    def __init__(self, reader: AnswerReader, options: Mapping[str, float] | None = None) -> None:
        self.reader = reader
        self.options = {**POLICIES[self.name].option_defaults, **(options or {})}

    # --- the three steps ---------------------------------------------------------------------

    def initial_state(self, models: Sequence[str]) -> State:
        """The state before any feedback."""
        raise NotImplementedError

    def select(self, state: State, models: Sequence[str], rng: np.random.Generator) -> list[str]:
        """The models to ask."""
        raise NotImplementedError

    def combine(
        self,
        state: State,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        stand_ins: Mapping[str, np.ndarray],
    ) -> Combined:
        """One answer from the models' ``answers``; missing ones count as their ``stand_ins``."""
        raise NotImplementedError

    def observe(
        self,
        state: State,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        label: float,
        played: str | None,
    ) -> State:
        """The state after learning that the answer was ``label``."""
        raise NotImplementedError

    # --- shared pieces -----------------------------------------------------------------------

    def reward(self, answer: np.ndarray, label: float) -> float:
        """How good ``answer`` was, between 0 and 1."""
        if self.reader.task == "classification":
            return float(int(np.argmax(answer)) == int(label))
        scale = self.options.get("loss_scale", 1.0) or 1.0
        return 1.0 - min(1.0, ((float(answer) - label) / scale) ** 2)

    def confidence(self, value: np.ndarray) -> float:
        """How sure a combined answer is: its top probability (regression: 1)."""
        return float(np.max(value)) if self.reader.task == "classification" else 1.0

    def dump(self, state: State) -> dict[str, Any]:
        """The state as JSON values."""
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in state.items()}

    def load(self, stored: Mapping[str, Any]) -> State:
        """A state from its JSON values."""
        return {
            k: np.asarray(v, dtype=np.float64) if isinstance(v, list) and k != "models" else v
            for k, v in stored.items()
        }

    def fits(self, state: State, models: Sequence[str]) -> bool:
        """Whether ``state`` was made for these models."""
        return list(state.get("models", [])) == list(models)


def _weights(log_weights: np.ndarray) -> np.ndarray:
    shifted = np.exp(log_weights - log_weights.max())
    result: np.ndarray = shifted / shifted.sum()
    return result


class _EveryModel(CorrectionPolicy):
    """Policies that ask every linked model and combine all their answers."""

    queries_every_model = True

    def select(self, state: State, models: Sequence[str], rng: np.random.Generator) -> list[str]:
        """Every model."""
        return list(models)


class Exp4(_EveryModel):
    """A weighted ensemble of every model; weights fall exponentially with each model's loss."""

    name = "exp4"

    def initial_state(self, models: Sequence[str]) -> State:
        """Equal weights."""
        return {"models": list(models), "log_weights": np.zeros(len(models))}

    def combine(
        self,
        state: State,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        stand_ins: Mapping[str, np.ndarray],
    ) -> Combined:
        """The weighted average; confidence scales with the weight that answered."""
        weights = _weights(state["log_weights"])
        value = sum(
            w * (answers[m] if m in answers else stand_ins[m])
            for w, m in zip(weights, models, strict=True)
        )
        arrived = float(sum(w for w, m in zip(weights, models, strict=True) if m in answers))
        combined = np.asarray(value, dtype=np.float64)
        return Combined(
            combined, arrived * self.confidence(combined), [m for m in models if m in answers]
        )

    def observe(
        self,
        state: State,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        label: float,
        played: str | None,
    ) -> State:
        """Each weight times ``exp(-eta * loss)``."""
        losses = np.array([1.0 - self.reward(answers[m], label) for m in models])
        log_weights = state["log_weights"] - self.options["eta"] * losses
        return {**state, "log_weights": log_weights - log_weights.max()}


class _OneModel(CorrectionPolicy):
    """Policies that ask one model and learn from its reward (bandits)."""

    def combine(
        self,
        state: State,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        stand_ins: Mapping[str, np.ndarray],
    ) -> Combined:
        """The one answer."""
        name, value = next(iter(answers.items()))
        return Combined(value, self.confidence(value), [name])

    def rewards(
        self,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        label: float,
        played: str | None,
    ) -> dict[int, float]:
        """The rewards to learn from: the played model's when known, else every model's."""
        if played is not None and played in models:
            index = list(models).index(played)
            return {index: self.reward(answers[played], label)}
        return {i: self.reward(answers[m], label) for i, m in enumerate(models)}


class Exp3(_OneModel):
    """Exp3: one model at random, mixing weights with uniform exploration (gamma)."""

    name = "exp3"

    def initial_state(self, models: Sequence[str]) -> State:
        """Equal weights."""
        return {"models": list(models), "log_weights": np.zeros(len(models))}

    def probabilities(self, state: State) -> np.ndarray:
        """Each model's chance to be picked."""
        gamma = self.options["gamma"]
        weights = _weights(state["log_weights"])
        result: np.ndarray = (1 - gamma) * weights + gamma / len(weights)
        return result

    def select(self, state: State, models: Sequence[str], rng: np.random.Generator) -> list[str]:
        """One model, drawn by probability."""
        return [models[int(rng.choice(len(models), p=self.probabilities(state)))]]

    def observe(
        self,
        state: State,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        label: float,
        played: str | None,
    ) -> State:
        """Raise the picked model's weight by its importance-weighted reward."""
        gamma = self.options["gamma"]
        probabilities = self.probabilities(state)
        log_weights = state["log_weights"].copy()
        rewards = self.rewards(models, answers, label, played)
        for index, reward in rewards.items():
            estimate = reward / probabilities[index] if len(rewards) == 1 else reward
            log_weights[index] += gamma * estimate / len(models)
        return {**state, "log_weights": log_weights - log_weights.max()}


class _CountingBandit(_OneModel):
    """Bandits that keep counts and reward sums per model."""

    def initial_state(self, models: Sequence[str]) -> State:
        """No plays yet."""
        return {
            "models": list(models),
            "counts": np.zeros(len(models)),
            "sums": np.zeros(len(models)),
        }

    def observe(
        self,
        state: State,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        label: float,
        played: str | None,
    ) -> State:
        """Count the play and add its reward."""
        counts, sums = state["counts"].copy(), state["sums"].copy()
        for index, reward in self.rewards(models, answers, label, played).items():
            counts[index] += 1
            sums[index] += reward
        return {**state, "counts": counts, "sums": sums}

    @staticmethod
    def means(state: State) -> np.ndarray:
        """Average reward per model (1.0, optimistic, before its first play)."""
        counts = state["counts"]
        return np.where(counts > 0, state["sums"] / np.maximum(counts, 1), 1.0)


class EpsilonGreedy(_CountingBandit):
    """The best model so far, or any model with probability epsilon."""

    name = "epsilon_greedy"

    def select(self, state: State, models: Sequence[str], rng: np.random.Generator) -> list[str]:
        """Explore with probability epsilon, else exploit."""
        if rng.random() < self.options["epsilon"]:
            return [models[int(rng.integers(len(models)))]]
        return [models[int(np.argmax(self.means(state)))]]


class Ucb1(_CountingBandit):
    """The model with the highest mean reward plus ``sqrt(2 ln N / n)``."""

    name = "ucb1"

    def select(self, state: State, models: Sequence[str], rng: np.random.Generator) -> list[str]:
        """An untried model first; then the best upper bound."""
        counts = state["counts"]
        untried = np.flatnonzero(counts == 0)
        if len(untried):
            return [models[int(untried[0])]]
        bounds = self.means(state) + np.sqrt(2 * math.log(counts.sum()) / counts)
        return [models[int(np.argmax(bounds))]]


class Personalized(_EveryModel):
    """Velox's split model: a per-user linear model over every model's answer."""

    name = "personalized"

    def _features(
        self,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        stand_ins: Mapping[str, np.ndarray],
    ) -> np.ndarray:
        parts = [np.atleast_1d(answers[m] if m in answers else stand_ins[m]) for m in models]
        return np.concatenate([*parts, [1.0]])

    def initial_state(self, models: Sequence[str]) -> State:
        """A model that starts as the plain average of the models' answers."""
        count = len(models)
        if self.reader.task == "regression":
            weights = np.append(np.full(count, 1.0 / count), 0.0)
            return {
                "models": list(models),
                "weights": weights,
                "p": np.eye(count + 1) * self.options["rls_start"],
            }
        classes = self.reader.classes
        matrix = np.zeros((classes, count * classes + 1))
        for index in range(count):
            matrix[:, index * classes : (index + 1) * classes] += (
                np.eye(classes) * self.options["prior_strength"] / count
            )
        return {"models": list(models), "weights": matrix}

    def combine(
        self,
        state: State,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        stand_ins: Mapping[str, np.ndarray],
    ) -> Combined:
        """The user's linear model over the answers; confidence scales with how many arrived."""
        features = self._features(models, answers, stand_ins)
        arrived = sum(1 for m in models if m in answers) / len(models)
        if self.reader.task == "regression":
            value = np.asarray(float(state["weights"] @ features))
        else:
            scores = state["weights"] @ features
            exp = np.exp(scores - scores.max())
            value = exp / exp.sum()
        return Combined(
            value, arrived * self.confidence(value), [m for m in models if m in answers]
        )

    def observe(
        self,
        state: State,
        models: Sequence[str],
        answers: Mapping[str, np.ndarray],
        label: float,
        played: str | None,
        *,
        rate: float | None = None,
    ) -> State:
        """One SGD step on the cross-entropy (classification) or one RLS update (regression)."""
        features = self._features(models, answers, {})
        if self.reader.task == "regression":
            forgetting = self.options["forgetting"]
            p, weights = state["p"], state["weights"]
            gain = p @ features / (forgetting + features @ p @ features)
            weights = weights + gain * (label - weights @ features)
            p = (p - np.outer(gain, features @ p)) / forgetting
            return {**state, "weights": weights, "p": p}
        step = self.options["learning_rate"] if rate is None else rate
        matrix = state["weights"]
        scores = matrix @ features
        exp = np.exp(scores - scores.max())
        gradient = exp / exp.sum()
        gradient[int(label)] -= 1.0
        return {**state, "weights": matrix - step * np.outer(gradient, features)}

    def observe_shared(
        self, state: State, models: Sequence[str], answers: Mapping[str, np.ndarray], label: float
    ) -> State:
        """The app-wide model's (smaller) step on the same example."""
        return self.observe(
            state, models, answers, label, None, rate=self.options["shared_learning_rate"]
        )


IMPLEMENTATIONS: Mapping[str, type[CorrectionPolicy]] = {
    policy.name: policy for policy in (Exp3, Exp4, EpsilonGreedy, Ucb1, Personalized)
}
"""The code of every learning policy in the registry, by name."""


def correction_policy(
    name: str, reader: AnswerReader, options: Mapping[str, float]
) -> CorrectionPolicy:
    """A new policy object."""
    return IMPLEMENTATIONS[name](reader, options)
