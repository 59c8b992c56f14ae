"""Feedback counts that every gateway adds to, in the state store.

A rollout's arms (baseline and canary: examples and wrong answers) and the last look
taken at them, and a shadow's joined feedback, are documents in the store's policy
state space under the app name ``rollouts/MODEL`` (no app can have that name: app
names are URL path segments). Each change is one atomic read-modify-write, so
gateways that take feedback at once lose no example, and a look is judged once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ketch_gateway.rollouts.judgement import Arm
from ketch_gateway.stores.contract import PolicyState, StateStore

__all__ = ["ArmCounts", "CountsStore"]

BASELINE = "baseline"
CANARY = "canary"


@dataclass(frozen=True)
class ArmCounts:
    """A rollout's feedback so far, and the last look judged (-1: none yet)."""

    baseline: Arm
    canary: Arm
    looked: int = -1

    @classmethod
    def read(cls, state: PolicyState | None) -> ArmCounts:
        """From the stored document (None: nothing yet)."""
        state = state or {}
        return cls(_arm(state.get(BASELINE)), _arm(state.get(CANARY)), int(state.get("looked", -1)))


def _arm(found: Any) -> Arm:
    if not isinstance(found, dict):
        return Arm()
    return Arm(int(found.get("examples", 0)), int(found.get("errors", 0)))


def _added(state: PolicyState | None, arm: str, wrong: bool) -> PolicyState:
    state = dict(state or {})
    counts = dict(state.get(arm) or {"examples": 0, "errors": 0})
    counts["examples"] = int(counts.get("examples", 0)) + 1
    counts["errors"] = int(counts.get("errors", 0)) + int(wrong)
    state[arm] = counts
    return state


class CountsStore:
    """The counts of one gateway's rollouts and shadows, in ``store``."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    @staticmethod
    def _space(model: str) -> str:
        return f"rollouts/{model}"

    async def arms(self, model: str, rollout: str) -> ArmCounts:
        """The rollout's counts."""
        return ArmCounts.read(await self.store.load_policy_state(self._space(model), rollout))

    async def add_to_arm(self, model: str, rollout: str, arm: str, wrong: bool) -> None:
        """Count one example for ``arm`` (baseline or canary)."""
        await self.store.update_policy_state(
            self._space(model), rollout, lambda state: _added(state, arm, wrong)
        )

    async def claim_look(self, model: str, rollout: str, look: int) -> ArmCounts | None:
        """Mark ``look`` as judged; the counts to judge, or None when it already was."""
        claimed: list[bool] = []

        def mark(state: PolicyState | None) -> PolicyState:
            claimed.clear()
            state = dict(state or {})
            if int(state.get("looked", -1)) < look:
                state["looked"] = look
                claimed.append(True)
            return state

        state = await self.store.update_policy_state(self._space(model), rollout, mark)
        return ArmCounts.read(state) if claimed else None

    async def shadow(self, model: str, version: str) -> dict[str, Any]:
        """A shadow's joined feedback: examples, and each side's wrong answers."""
        found = await self.store.load_policy_state(self._space(model), f"shadow/{version}")
        counts = {"examples": 0, "answered_wrong": 0, "shadow_wrong": 0}
        counts.update({k: int(v) for k, v in (found or {}).items() if k in counts})
        return counts

    async def add_to_shadow(
        self, model: str, version: str, answered_wrong: bool, shadow_wrong: bool
    ) -> None:
        """Count one example joined to a mirrored query."""

        def add(state: PolicyState | None) -> PolicyState:
            state = dict(state or {})
            state["examples"] = int(state.get("examples", 0)) + 1
            state["answered_wrong"] = int(state.get("answered_wrong", 0)) + int(answered_wrong)
            state["shadow_wrong"] = int(state.get("shadow_wrong", 0)) + int(shadow_wrong)
            return state

        await self.store.update_policy_state(self._space(model), f"shadow/{version}", add)
