"""Tiny VW models for the plugin's tests, trained on generated data and on digits.

Each model is saved with its training arguments beside it (``<model>.args``), the
way a user would ship one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from vowpalwabbit import pyvw

from ketch import Framework, ModelRuntime, ModelSpec
from ketch_vw import dense_example, sidecar_path

REGRESSION_WEIGHTS = np.array([1.5, -2.0, 0.5, 3.0, 1.0])
USERS = 6
ACTIONS = 3


@dataclass(frozen=True)
class Dataset:
    """Rows, their labels, and the same rows as VW text examples."""

    rows: np.ndarray
    labels: np.ndarray
    texts: np.ndarray

    def take(self, index: slice | Sequence[int]) -> Dataset:
        """Some of the rows."""
        return Dataset(self.rows[index], self.labels[index], self.texts[index])


def texts_of(lines: Iterable[str]) -> np.ndarray:
    """A BYTES column (object array of bytes) holding ``lines``."""
    encoded = [line.encode() for line in lines]
    array = np.empty(len(encoded), dtype=object)
    array[:] = encoded
    return array


def dense_texts(rows: np.ndarray, namespace: str = "f") -> np.ndarray:
    """Each dense row as a VW text example."""
    return texts_of(dense_example(row, namespace) for row in rows.tolist())


def regression_data(count: int, seed: int) -> Dataset:
    """Five features in [0, 1), a linear target with a little noise."""
    rng = np.random.default_rng(seed)
    rows = rng.uniform(0.0, 1.0, size=(count, 5))
    labels = rows @ REGRESSION_WEIGHTS + 0.5 + rng.normal(0.0, 0.01, size=count)
    return Dataset(rows, labels, dense_texts(rows))


def binary_data(count: int, seed: int) -> Dataset:
    """Five features; the label is the sign of a linear score (-1 or 1)."""
    rng = np.random.default_rng(seed)
    rows = rng.uniform(-1.0, 1.0, size=(count, 5))
    labels = np.where(rows @ REGRESSION_WEIGHTS > 0, 1, -1)
    return Dataset(rows, labels, dense_texts(rows))


def digits_data() -> Dataset:
    """scikit-learn's digits scaled to [0, 1], labelled 1 to 10 as VW numbers classes."""
    rows, digits = load_digits(return_X_y=True)
    rows = rows / 16.0
    return Dataset(rows, digits.astype(np.int64) + 1, dense_texts(rows))


def bandit_row(user: int, actions: int = ACTIONS) -> str:
    """One decision: a shared line for the user, one line per action."""
    lines = [f"shared |s user=u{user}"] + [f"|a item=i{action}" for action in range(actions)]
    return "\n".join(lines)


def best_action(user: int) -> int:
    """The action that costs nothing for ``user`` (every other costs 1)."""
    return user % ACTIONS


def bandit_data(count: int, seed: int) -> Dataset:
    """Logged decisions: a user, a uniformly chosen action, and its cost (0 if best, else 1).

    ``rows`` holds the user, ``labels`` rows of (action, cost, probability).
    """
    rng = np.random.default_rng(seed)
    users = rng.integers(0, USERS, size=count)
    actions = rng.integers(0, ACTIONS, size=count)
    costs = (actions != users % ACTIONS).astype(np.float64)
    labels = np.column_stack([actions, costs, np.full(count, 1.0 / ACTIONS)])
    return Dataset(users, labels, texts_of(bandit_row(int(user)) for user in users))


def labelled_lines(data: Dataset, task: str) -> list[str | list[str]]:
    """The examples VW learns from, with their labels, as a trainer writes them."""
    examples: list[str | list[str]] = []
    for text, label in zip(data.texts.tolist(), data.labels.tolist(), strict=True):
        if task == "bandit":
            action, cost, probability = label
            lines = text.decode().splitlines()
            lines[1 + int(action)] = f"0:{cost}:{probability} {lines[1 + int(action)]}"
            examples.append(lines)
        else:
            examples.append(f"{label} {text.decode()}")
    return examples


def load(framework: Framework, path: Path, **options: str) -> ModelRuntime:
    """The model at ``path`` loaded by the vw plugin in this process, with ``options``."""
    return ModelRuntime.load(framework, ModelSpec.from_path(path, options=options))


def train(arguments: str, examples: Iterable[str | list[str]]) -> Any:
    """A VW workspace trained on ``examples`` in one pass."""
    workspace = pyvw.Workspace(f"--quiet {arguments}")
    for example in examples:
        workspace.learn(example)
    return workspace


def save(workspace: Any, path: Path, arguments: str) -> Path:
    """Save the model and its training arguments beside it; the model's path."""
    workspace.save(str(path))
    sidecar_path(path).write_text(f"{arguments}\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class TrainedModel:
    """A saved model, its training arguments, and rows to try it on."""

    path: Path
    arguments: str
    task: str
    test: Dataset

    def reference(self) -> Any:
        """VW itself, loaded from the same file with the same arguments, to compare against."""
        return pyvw.Workspace(f"--quiet -i {self.path} {self.arguments}")

    def copy_to(self, folder: Path) -> TrainedModel:
        """The same model in another folder, with its arguments file."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / self.path.name
        target.write_bytes(self.path.read_bytes())
        sidecar_path(target).write_bytes(sidecar_path(self.path).read_bytes())
        return TrainedModel(target, self.arguments, self.task, self.test)


MODELS: dict[str, tuple[str, str]] = {
    # name: (task, VW arguments)
    "regression": ("regression", "--l2 1e-8"),
    "binary": ("binary", "--binary --loss_function logistic"),
    "digits": ("multiclass", "--oaa 10 --probabilities --loss_function logistic"),
    "digits_labels": ("multiclass", "--oaa 10"),
    "bandit": ("bandit", "--cb_explore_adf --epsilon 0.1 -q sa"),
}


def _datasets(task: str) -> tuple[Dataset, Dataset]:
    if task == "regression":
        return regression_data(2000, seed=0), regression_data(40, seed=1)
    if task == "binary":
        return binary_data(400, seed=2), binary_data(40, seed=3)
    if task == "multiclass":
        digits = digits_data()
        return digits.take(slice(0, 1000)), digits.take(slice(1000, None))
    return bandit_data(600, seed=4), bandit_data(30, seed=5)


def train_model(name: str, folder: Path) -> TrainedModel:
    """Train the model ``name`` of :data:`MODELS` and save it in ``folder``."""
    task, arguments = MODELS[name]
    training, test = _datasets(task)
    workspace = train(arguments, labelled_lines(training, task))
    path = save(workspace, folder / f"{name}.vw", arguments)
    workspace.finish()
    return TrainedModel(path, arguments, task, test)
