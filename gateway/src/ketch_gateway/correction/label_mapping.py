"""An app's labels in each model's own numbering, and a model's classes in the app's.

An app numbers its classes 0 to ``classes - 1``. A model that learns online says in
its capabilities which labels it takes (:class:`ketch.LabelSpec`): ``classes``
listed in the model's class order (Vowpal Wabbit's ``--oaa 10`` numbers them 1 to
10, ``--binary`` -1 and 1), ``numbers`` (a regression target) or ``bandit``. The
app's class ``i`` is the model's ``classes[i]``, both ways: a label forwarded to the
model, and a class the model answers with. A model that declares nothing is taken
to number its classes as the app does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketch import LabelSpec

__all__ = ["LabelMapping", "LabelRefused"]


class LabelRefused(ValueError):
    """The model has no label for the app's; the message says what it learns instead."""


@dataclass(frozen=True)
class LabelMapping:
    """How one app's labels (``task``, over ``classes`` classes) map onto one model's."""

    task: str
    classes: int
    labels: LabelSpec | None

    def to_model(self, label: int | float) -> int | float:
        """The app's label in the model's numbering; LabelRefused when the model has none."""
        spec = self.labels
        if spec is None:
            return label
        if self.task == "classification":
            if spec.kind != "classes":
                raise LabelRefused(
                    f"the model learns {spec.describe()}, not the classes of a classification"
                )
            index = int(label)
            if index >= len(spec.classes):
                raise LabelRefused(
                    f"the app's class {index} has no counterpart in the model, which learns "
                    f"{len(spec.classes)} classes ({spec.describe()})"
                )
            return spec.classes[index]
        if spec.kind != "numbers":
            raise LabelRefused(f"the model learns {spec.describe()}, not a regression's numbers")
        return float(label)

    def class_indices(self, answers: np.ndarray) -> np.ndarray:
        """The app's class index of each class a model answered (-1 for one it has none for)."""
        values = answers.reshape(len(answers)).astype(np.int64)
        spec = self.labels
        if spec is None or spec.kind != "classes":
            return values
        index_of = {label: index for index, label in enumerate(spec.classes)}
        return np.fromiter(
            (index_of.get(value, -1) for value in values.tolist()), np.int64, len(values)
        )
