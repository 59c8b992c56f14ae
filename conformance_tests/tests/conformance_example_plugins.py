"""Plugins whose models refuse the suite's random rows, with and without ``ketch_example_inputs``.

Like a Vowpal Wabbit text model, ``tagged_text`` reads rows in a format of its own
(``|f word word ...``); like a ``torch.export`` archive exported with a dimension
range, ``bounded_sequence`` takes sequences of 5 to 9 steps only. Each gives its
own sample rows through ``ketch_example_inputs``; the ``*_without_examples``
variants do not, so the suite can only try random rows. ``wrong_examples`` gives
rows of the wrong datatype. ``ketch serve`` and the suite's worker import them as
``conformance_example_plugins:NAME`` when this folder is on PYTHONPATH.
"""

from __future__ import annotations

import numpy as np
from conformance_capability_plugins import (
    FEATURES,
    HashedText,
    PooledSequence,
    SequenceModel,
    TextModel,
)

from ketch import InvalidInputError, hookimpl
from ketch_conformance.reference import SoftmaxModel, SoftmaxRegressionPlugin

TAG = b"|f "
WORDS = ("sail", "wind", "harbour", "stone", "river", "light", "query", "answer", "ketch")
MIN_STEPS, MAX_STEPS, EXAMPLE_STEPS = 5, 9, 6


class TaggedTextWithoutExamples(HashedText):
    """Rows of ``|f word word ...``; anything else is refused as invalid input."""

    def decode(self, rows: np.ndarray) -> list[str]:
        """The words after the tag, or InvalidInputError naming the row that has none."""
        texts = []
        for index, row in enumerate(rows.tolist()):
            if not isinstance(row, bytes) or not row.startswith(TAG):
                raise InvalidInputError(
                    f"input 'text' row {index} is not an example ('|f word ...'): {row!r}"
                )
            texts.append(row[len(TAG) :].decode("utf-8", "replace"))
        return texts


class TaggedText(TaggedTextWithoutExamples):
    """The same, with sample rows of its own."""

    @hookimpl
    def ketch_example_inputs(self, model: object, rows: int) -> dict[str, np.ndarray] | None:
        if not isinstance(model, TextModel):
            return None
        examples = np.empty(rows, dtype=object)
        examples[:] = [
            TAG + " ".join(WORDS[(row + step) % len(WORDS)] for step in range(1 + row % 4)).encode()
            for row in range(rows)
        ]
        return {"text": examples}


class BoundedSequenceWithoutExamples(PooledSequence):
    """Sequences of 5 to 9 steps only; other lengths are refused, naming the input and range."""

    def pool(self, steps: np.ndarray) -> np.ndarray:
        if not MIN_STEPS <= steps.shape[1] <= MAX_STEPS:
            raise InvalidInputError(
                f"input 'steps': dimension 1 takes {MIN_STEPS} to {MAX_STEPS} steps, got "
                f"{steps.shape[1]}"
            )
        return super().pool(steps)


class BoundedSequence(BoundedSequenceWithoutExamples):
    """The same, with sample rows of its own: six steps, inside the range."""

    @hookimpl
    def ketch_example_inputs(self, model: object, rows: int) -> dict[str, np.ndarray] | None:
        if not isinstance(model, SequenceModel):
            return None
        rng = np.random.default_rng(rows)
        shape = (rows, EXAMPLE_STEPS, FEATURES)
        return {"steps": rng.uniform(0.0, 1.0, shape).astype(np.float32)}


class WrongExamples(SoftmaxRegressionPlugin):
    """Gives sample rows of FP64 for an FP32 input."""

    @hookimpl
    def ketch_example_inputs(self, model: object, rows: int) -> dict[str, np.ndarray] | None:
        if not isinstance(model, SoftmaxModel):
            return None
        return {"input": np.zeros((rows, FEATURES), np.float64)}


tagged_text = TaggedText()
tagged_text_without_examples = TaggedTextWithoutExamples()
bounded_sequence = BoundedSequence()
bounded_sequence_without_examples = BoundedSequenceWithoutExamples()
wrong_examples = WrongExamples()
