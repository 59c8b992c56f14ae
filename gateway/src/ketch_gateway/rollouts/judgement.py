"""Whether a canary's error rate is worse than its baseline's: the sequential test.

Each arm's feedback is a count of examples and of wrong answers. The canary's excess
error ``d = p_canary - p_baseline`` is compared with the allowed margin ``delta``
(``max_error_increase``) by a one-sided z test on the difference of two proportions,
with Agresti and Caffo's adjustment (one wrong and one right answer added to each
arm: the Wald test then keeps its level with few errors, where the plain one divides
by a standard error of zero):

- *not worse*: reject ``d >= delta`` when ``z = (d - delta) / se < -z_k``: the canary
  may take the next step;
- *worse*: reject ``d <= delta`` when ``z > z_k``: the canary is rolled back.

Looking again and again at growing data would make a fixed-level test wrong far more
often than its level says, so the data is only judged at *looks*: when the canary's
examples first reach ``min_feedback * 2**k`` (k = 0, 1, 2, ...), and look ``k`` spends
``alpha / 2**(k + 1)`` of the error probability ``alpha = 1 - confidence`` on each
side. The spent levels add up to at most ``alpha`` over any number of looks
(a Bonferroni alpha-spending schedule), so the chance of ever promoting a canary
that is worse by more than ``delta``, and the chance of ever rolling back one that is
not worse, are each at most ``alpha``. docs/rollouts.md says why this test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from statistics import NormalDist
from typing import Final

__all__ = ["Arm", "Judgement", "Verdict", "judge", "look_index", "look_size"]

_STANDARD_NORMAL: Final = NormalDist()


@dataclass(frozen=True)
class Arm:
    """One version's feedback: examples joined by query id, and how many were answered wrong."""

    examples: int = 0
    errors: int = 0

    @property
    def error_rate(self) -> float | None:
        """The share answered wrong (None before any example)."""
        return self.errors / self.examples if self.examples else None


class Verdict(Enum):
    """What a look at the data decided."""

    NOT_WORSE = "not_worse"
    WORSE = "worse"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class Judgement:
    """A look's verdict, with the statistic and the bound it was held to."""

    verdict: Verdict
    look: int
    z: float
    bound: float
    excess_error: float

    def describe(self) -> str:
        """One line for the log and the status."""
        return (
            f"look {self.look}: excess error {self.excess_error:+.4f}, "
            f"z = {self.z:+.2f} against +/-{self.bound:.2f}"
        )


def look_size(min_feedback: int, look: int) -> int:
    """The canary's examples at which look ``look`` is taken."""
    return min_feedback * (1 << look)


def look_index(min_feedback: int, examples: int) -> int:
    """The last look the canary's ``examples`` have reached (-1: not the first yet)."""
    if examples < min_feedback:
        return -1
    return (examples // min_feedback).bit_length() - 1


def bound_at(look: int, confidence: float) -> float:
    """The z value a statistic must pass at ``look`` (one side, alpha spent by halves)."""
    alpha = (1.0 - confidence) / (1 << (look + 1))
    return _STANDARD_NORMAL.inv_cdf(1.0 - alpha)


def judge(baseline: Arm, canary: Arm, *, margin: float, confidence: float, look: int) -> Judgement:
    """The verdict of look ``look`` on the arms' feedback so far."""
    p_base = (baseline.errors + 1) / (baseline.examples + 2)
    p_canary = (canary.errors + 1) / (canary.examples + 2)
    variance = p_base * (1 - p_base) / (baseline.examples + 2) + p_canary * (1 - p_canary) / (
        canary.examples + 2
    )
    excess = p_canary - p_base
    z = (excess - margin) / math.sqrt(variance)
    bound = bound_at(look, confidence)
    if z < -bound:
        verdict = Verdict.NOT_WORSE
    elif z > bound:
        verdict = Verdict.WORSE
    else:
        verdict = Verdict.UNDECIDED
    return Judgement(verdict, look, z, bound, excess)
