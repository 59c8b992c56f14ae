"""Where a model's rollout stands: its canary, step, status and why it ended.

Every change to it is an admin change (started, stepped, paused, resumed, ended), so
it is recorded in the state store's admin log, replayed on restart and applied by
every gateway that shares the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ketch_gateway.rollouts.config import RolloutConfig

__all__ = ["ABORTED", "ENDED", "PAUSED", "PROMOTED", "ROLLED_BACK", "RUNNING", "RolloutPhase"]

RUNNING: Final = "running"
PAUSED: Final = "paused"
PROMOTED: Final = "promoted"
ROLLED_BACK: Final = "rolled_back"
ABORTED: Final = "aborted"
ENDED: Final = frozenset({PROMOTED, ROLLED_BACK, ABORTED})


@dataclass
class RolloutPhase:
    """One rollout of ``config.to`` over ``baseline``, identified by ``id``.

    ``passed_look`` is the last look whose test said the canary is not worse (it may
    take the next step once ``step_every_s`` has passed); it belongs to this gateway.
    """

    id: str
    baseline: str
    config: RolloutConfig
    started_at: float
    step_started_at: float
    step: int = 0
    status: str = RUNNING
    reason: str | None = None
    ended_at: float | None = None
    passed_look: int | None = None
    last_judgement: str | None = None

    @property
    def canary(self) -> str:
        """The version being rolled out."""
        return self.config.to

    @property
    def share(self) -> float:
        """The canary's share of traffic now (0 once rolled back or aborted)."""
        if self.status in (ROLLED_BACK, ABORTED):
            return 0.0
        return self.config.steps[self.step]

    @property
    def active(self) -> bool:
        """Whether it still splits traffic (running or paused)."""
        return self.status not in ENDED

    def split(self) -> dict[str, float]:
        """The split it puts on its model: the baseline first, the canary last (sticky)."""
        return {self.baseline: 1.0 - self.share, self.canary: self.share}

    def as_json(self) -> dict[str, Any]:
        """What the admin API shows of it (without the feedback counts)."""
        return {
            "id": self.id,
            "baseline": self.baseline,
            "canary": self.canary,
            "status": self.status,
            "step": self.step,
            "share": self.share,
            "reason": self.reason,
            "started_at": self.started_at,
            "step_started_at": self.step_started_at,
            "ended_at": self.ended_at,
            "last_judgement": self.last_judgement,
            "settings": self.config.as_json(),
        }
