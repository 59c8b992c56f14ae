"""Correction policies: which models an app asks, and how their answers become one.

Only ``single`` exists so far: ask the app's first linked model and pass its answer
on. The interface (select, then combine) is where ensembles and bandits slot in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from ketch_gateway.errors import ServiceUnavailable

__all__ = ["POLICIES", "Policy", "SinglePolicy", "policy_for"]


class Policy(Protocol):
    """Chooses the models to query for an app and user, and combines what they answer."""

    def select(self, models: Sequence[str], user: str | None) -> list[str]:
        """The linked models to query."""
        ...

    def combine(self, answers: Mapping[str, Mapping[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
        """One answer from the models' outputs, by model name."""
        ...


class SinglePolicy:
    """The app's first linked model answers alone."""

    def select(self, models: Sequence[str], user: str | None) -> list[str]:
        """The first linked model."""
        if not models:
            raise ServiceUnavailable("the app has no linked model")
        return [models[0]]

    def combine(self, answers: Mapping[str, Mapping[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
        """The only answer."""
        return next(iter(answers.values()))


POLICIES: dict[str, type[SinglePolicy]] = {"single": SinglePolicy}


def policy_for(name: str) -> Policy:
    """A new policy object for the policy called ``name``."""
    return POLICIES[name]()
