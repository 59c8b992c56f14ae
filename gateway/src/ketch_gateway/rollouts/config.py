"""What a model's rollout settings say: a shadow, a fixed split, a feedback-judged canary.

Read from a ``[[models]]`` table (``shadow``, ``split``, ``rollout``) or from an admin
request's JSON with the same rules; every mistake names the key.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any, Final

from ketch_gateway.control.config_reader import Reader

__all__ = [
    "DEFAULT_STEPS",
    "RolloutConfig",
    "ShadowConfig",
    "read_rollout",
    "read_shadow",
    "read_split",
]

DEFAULT_STEPS: Final = (0.05, 0.25, 0.5, 1.0)
SHARE_SUM_TOLERANCE: Final = 1e-6


@dataclass(frozen=True)
class ShadowConfig:
    """Mirror ``share`` of a model's requests to ``version``, off the request path.

    ``queue`` bounds the mirrored requests waiting for the shadow; past it they are
    dropped (and counted).
    """

    version: str
    share: float
    queue: int = 1024

    def as_json(self) -> dict[str, Any]:
        """The settings as the admin API shows and takes them."""
        return asdict(self)


@dataclass(frozen=True)
class RolloutConfig:
    """A canary: move traffic to ``to`` step by step while feedback says it is not worse.

    ``steps``: the canary's share at each step, rising, the last 1.0. A step is left
    only after ``step_every_s`` seconds, and once the canary has ``min_feedback``
    examples joined by query id and the test (see docs/rollouts.md) says its error rate
    is not worse than the baseline's by more than ``max_error_increase`` with
    ``confidence``; it is rolled back when the test says it is, or when its p99 latency
    exceeds ``max_p99_ms`` (None: latency is not judged).
    """

    to: str
    steps: tuple[float, ...] = DEFAULT_STEPS
    min_feedback: int = 200
    max_error_increase: float = 0.01
    max_p99_ms: float | None = None
    step_every_s: float = 60.0
    confidence: float = 0.95

    def as_json(self) -> dict[str, Any]:
        """The settings as the admin API shows and takes them."""
        settings = asdict(self)
        settings["steps"] = list(self.steps)
        return settings


def _share(reader: Reader, key: str, value: object, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise reader.error(key, f"expected a share between 0 and 1, got {value!r}")
    share = float(value)
    if not math.isfinite(share) or share > 1 or share < 0 or (positive and share == 0):
        low = "above 0" if positive else "at least 0"
        raise reader.error(key, f"expected a share {low} and at most 1, got {value!r}")
    return share


def _known_version(reader: Reader, key: str, version: str, versions: Collection[str]) -> None:
    if version not in versions:
        raise reader.error(
            key, f"unknown version {version!r} (versions: {', '.join(sorted(versions))})"
        )


def read_shadow(reader: Reader, versions: Collection[str], current: str) -> ShadowConfig:
    """A ``shadow = {version = "2", share = 0.2}`` table."""
    reader.check_keys({"version", "share", "queue"}, {"version", "share"})
    version = reader.string("version")
    _known_version(reader, "version", version, versions)
    if version == current:
        raise reader.error("version", f"{version!r} is the version that answers; shadow another")
    share = _share(reader, "share", reader.data["share"])
    return ShadowConfig(version, share, reader.integer("queue", 1024, minimum=1))


def read_split(reader: Reader, versions: Collection[str]) -> dict[str, float]:
    """A ``split = {"1" = 0.9, "2" = 0.1}`` table: shares by version, summing to 1.

    Its order is kept: a user's place in it (a hash of their id) picks the version.
    """
    split: dict[str, float] = {}
    for version, value in reader.data.items():
        _known_version(reader, version, version, versions)
        split[version] = _share(reader, version, value, positive=False)
    if not split:
        raise reader.error(None, "a split names at least one version and its share")
    total = sum(split.values())
    if abs(total - 1.0) > SHARE_SUM_TOLERANCE:
        raise reader.error(None, f"the shares must add up to 1, they add up to {total:g}")
    return split


def _steps(reader: Reader) -> tuple[float, ...]:
    if "steps" not in reader.data:
        return DEFAULT_STEPS
    values = reader.data["steps"]
    if not isinstance(values, list) or not values:
        raise reader.error("steps", "expected a list of shares, such as [0.05, 0.25, 0.5, 1.0]")
    steps = tuple(_share(reader, "steps", value) for value in values)
    if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        raise reader.error("steps", f"the shares must rise step by step, got {list(steps)}")
    if steps[-1] != 1.0:
        raise reader.error("steps", f"the last step must be 1.0 (all traffic), got {steps[-1]}")
    return steps


def read_rollout(reader: Reader, versions: Collection[str], current: str) -> RolloutConfig:
    """A ``rollout = {to = "2", steps = [...], ...}`` table."""
    reader.check_keys(
        {
            "to",
            "steps",
            "min_feedback",
            "max_error_increase",
            "max_p99_ms",
            "step_every_s",
            "confidence",
        },
        {"to"},
    )
    to = reader.string("to")
    _known_version(reader, "to", to, versions)
    if to == current:
        raise reader.error("to", f"{to!r} already answers every request; roll out another version")
    confidence = reader.number("confidence", 0.95, minimum=0.5)
    if confidence >= 1:
        raise reader.error("confidence", f"expected a probability below 1, got {confidence}")
    increase = reader.number("max_error_increase", 0.01, minimum=0, inclusive=True)
    if increase >= 1:
        raise reader.error("max_error_increase", f"expected a share below 1, got {increase}")
    return RolloutConfig(
        to=to,
        steps=_steps(reader),
        min_feedback=reader.integer("min_feedback", 200, minimum=1),
        max_error_increase=increase,
        max_p99_ms=reader.number("max_p99_ms", minimum=0) if "max_p99_ms" in reader.data else None,
        step_every_s=reader.number("step_every_s", 60.0, minimum=0, inclusive=True),
        confidence=confidence,
    )
