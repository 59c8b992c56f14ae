"""Whether two answers agree, and whether an answer was wrong for its label.

An answer is read as a decision: a list of several numbers (class probabilities or
scores) is the index of the largest; a one-element list is its element; anything
else is itself. Two answers agree when their decisions are equal; an answer is wrong
when its decision is not the label. So the error rate is a classifier's (for a
regression model, an answer is wrong unless it equals the label).
"""

from __future__ import annotations

from typing import Any

__all__ = ["agree", "decision", "is_wrong"]


def decision(answer: Any) -> Any:
    """What ``answer`` decides (see the module's docstring)."""
    if isinstance(answer, list):
        if len(answer) == 1:
            return decision(answer[0])
        if answer and all(
            isinstance(value, int | float) and not isinstance(value, bool) for value in answer
        ):
            return max(range(len(answer)), key=answer.__getitem__)
    return answer


def agree(first: Any, second: Any) -> bool:
    """Whether two answers decide the same."""
    return bool(decision(first) == decision(second))


def is_wrong(answer: Any, label: Any) -> bool:
    """Whether ``answer`` decides anything but ``label``."""
    return bool(decision(answer) != decision(label))
