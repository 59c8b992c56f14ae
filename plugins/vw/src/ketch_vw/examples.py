"""Rows as VW text-format examples, and labels put in front of them.

A text row is one VW example, ``[label] [importance] ['tag] |namespace features...``;
the plugin keeps only its features (from the first ``|``), so a row's own label never
changes a prediction and observed labels come from the labels tensor alone. A dense
row becomes features of one namespace, column ``i`` the feature ``i``. A
contextual-bandit row is a whole multi-line example: an optional ``shared`` line,
then one line per action.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from ketch import InvalidInputError

__all__ = [
    "DEFAULT_NAMESPACE",
    "SHARED",
    "AdfExample",
    "adf_example",
    "dense_example",
    "dense_examples",
    "labelled",
    "single_line_example",
]

SHARED: Final = "shared"
DEFAULT_NAMESPACE: Final = "f"
"""The namespace a dense row's columns become features of, unless the option says another."""


def _features(line: str, input_name: str, index: int) -> str:
    start = line.find("|")
    if start < 0:
        raise InvalidInputError(
            f"input {input_name!r} row {index}: {line[:60]!r} is not a VW example "
            "(its features start at a '|', as in '|f price:0.5 size:2')"
        )
    return line[start:].rstrip()


def single_line_example(text: str, input_name: str, index: int) -> str:
    """The features of the one example in ``text``, without its label, importance or tag."""
    stripped = text.strip()
    if "\n" in stripped or "\r" in stripped:
        raise InvalidInputError(
            f"input {input_name!r} row {index} holds several lines; this model takes "
            "one VW example per row"
        )
    return _features(stripped, input_name, index)


def dense_example(row: Sequence[float] | np.ndarray, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The VW example for one dense row: column ``i`` is feature ``i`` of ``namespace``.

    Zeros are left out, as VW itself drops zero-valued features. Use it to write
    training examples that an ``input=dense`` model will understand: ``namespace``
    must be the one the model is served with (the option ``namespace``, by default
    ``f``, which is also this argument's default).
    """
    values = row.tolist() if isinstance(row, np.ndarray) else row
    features = " ".join([f"{column}:{value!r}" for column, value in enumerate(values) if value])
    return f"|{namespace} {features}"


def dense_examples(batch: np.ndarray, namespace: str, input_name: str) -> list[str]:
    """The VW example of every row; InvalidInputError for NaN or infinite values."""
    if batch.dtype.kind == "f" and not np.isfinite(batch).all():
        row = int(np.flatnonzero(~np.isfinite(batch).all(axis=1))[0])
        raise InvalidInputError(f"input {input_name!r} row {row} holds NaN or infinity")
    return [dense_example(row, namespace) for row in batch.tolist()]


class AdfExample:
    """A multi-line contextual-bandit example: an optional shared line and the action lines."""

    __slots__ = ("actions", "shared")

    def __init__(self, shared: str | None, actions: list[str]) -> None:
        self.shared = shared
        self.actions = actions

    def lines(self, label: tuple[int, float, float] | None = None) -> list[str]:
        """The example's lines, with ``(action, cost, probability)`` on the chosen action."""
        actions = list(self.actions)
        if label is not None:
            action, cost, probability = label
            actions[action] = f"0:{cost!r}:{probability!r} {actions[action]}"
        return ([self.shared] if self.shared is not None else []) + actions


def adf_example(text: str, input_name: str, index: int, max_actions: int) -> AdfExample:
    """The multi-line example in one row: lines split on newlines, blank lines ignored."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    shared = None
    if lines and lines[0].split("|", 1)[0].split()[:1] == [SHARED]:
        shared = f"{SHARED} {_features(lines.pop(0), input_name, index)}"
    for line in lines:
        if line.split("|", 1)[0].split()[:1] == [SHARED]:
            raise InvalidInputError(
                f"input {input_name!r} row {index}: only the first line may be the shared one"
            )
    actions = [_features(line, input_name, index) for line in lines]
    if not actions:
        raise InvalidInputError(
            f"input {input_name!r} row {index} has no action lines; a contextual-bandit "
            "row is an optional 'shared |...' line and one '|...' line per action"
        )
    if len(actions) > max_actions:
        raise InvalidInputError(
            f"input {input_name!r} row {index} has {len(actions)} actions; this model "
            f"answers at most {max_actions} (the option actions)"
        )
    return AdfExample(shared, actions)


def labelled(label: str, example: str) -> str:
    """A single-line example with ``label`` in front of its features."""
    return f"{label} {example}"
