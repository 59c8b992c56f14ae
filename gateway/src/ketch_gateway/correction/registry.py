"""The policies an app may name, with their options, and the tasks they read answers for.

This is the one list of policies: the configuration checks an app's ``policy``
and ``policy_options`` against it, and :mod:`ketch_gateway.correction.policies`
implements every entry but ``single`` (the pass-through, which the app itself
runs). A leaf module, so that reading a configuration loads no correction code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = ["PASS_THROUGH", "POLICIES", "TASKS", "PolicyEntry"]

TASKS: Final = ("classification", "regression")
"""What the answers of a learning policy's models are read as."""

PASS_THROUGH: Final = "single"
"""The default policy: the app's first linked model answers alone, as it answers."""


@dataclass(frozen=True)
class PolicyEntry:
    """A policy's name, what it does, and its options with their defaults."""

    name: str
    summary: str
    option_defaults: Mapping[str, float] = field(default_factory=dict)

    @property
    def learns(self) -> bool:
        """Whether the policy combines answers and learns from feedback (all but single)."""
        return self.name != PASS_THROUGH

    def check_options(self, options: Mapping[str, object]) -> dict[str, float]:
        """The options as numbers; ValueError for one the policy does not have."""
        checked = {}
        for key, value in options.items():
            if key not in self.option_defaults:
                known = ", ".join(self.option_defaults) or "none"
                raise ValueError(f"policy {self.name!r} has no option {key!r} (options: {known})")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"option {key!r} must be a number of at least 0, got {value!r}")
            checked[key] = float(value)
        return checked


POLICIES: Final[Mapping[str, PolicyEntry]] = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            PolicyEntry(PASS_THROUGH, "the first linked model answers alone"),
            PolicyEntry(
                "exp3",
                "one model at random by weight; the picked model's weight grows with its reward",
                {"gamma": 0.1, "loss_scale": 1.0},
            ),
            PolicyEntry(
                "exp4",
                "every model, averaged by weight; weights shrink with each model's loss",
                {"eta": 0.05, "loss_scale": 1.0},
            ),
            PolicyEntry(
                "epsilon_greedy",
                "the model with the best average reward, or any with probability epsilon",
                {"epsilon": 0.1, "loss_scale": 1.0},
            ),
            PolicyEntry(
                "ucb1",
                "the model with the best upper confidence bound on its reward",
                {"loss_scale": 1.0},
            ),
            PolicyEntry(
                "personalized",
                "a linear model per user over every model's answer (Velox's split model)",
                {
                    "learning_rate": 1.0,
                    "shared_learning_rate": 0.02,
                    "prior_strength": 4.0,
                    "forgetting": 1.0,
                    "rls_start": 10.0,
                },
            ),
        )
    }
)
"""Every policy, by name; ``single`` first (the default)."""
