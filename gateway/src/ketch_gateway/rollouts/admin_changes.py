"""The rollouts' admin changes: splits, shadows, and each move of a rollout.

Like every admin change they are recorded in the state store's admin log, replayed
when a gateway restarts and applied by every gateway that follows the log. A
rollout's changes carry its id and the time they were made (``at``), so that a
replay puts it back where it was, with its step's start time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ketch_gateway.control.config_reader import Reader
from ketch_gateway.errors import BadRequest
from ketch_gateway.rollouts.config import read_rollout, read_shadow, read_split
from ketch_gateway.rollouts.phase import ABORTED, ROLLED_BACK

if TYPE_CHECKING:
    from ketch_gateway.gateway import Gateway

__all__ = ["ROLLOUT_OPERATIONS"]


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key}: expected a non-empty string")
    return value


def _time(body: dict[str, Any]) -> float:
    value = body.get("at")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest("at: expected the time of the change, in seconds since the epoch")
    return float(value)


def _table(body: dict[str, Any], key: str) -> Reader | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"{key}: expected an object, or null")
    return Reader(value, (key,))


async def set_split(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Split a model's traffic by version (``split``: shares; null for none)."""
    name = _text(body, "model")
    model = gateway.models.find(name)
    table = _table(body, "split")
    split = read_split(table, model.versions) if table is not None else None
    gateway.rollouts.set_split(name, split)
    return await gateway.rollouts.describe(name)


async def set_shadow(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Mirror a share of a model's requests to another version (``shadow``; null: stop)."""
    name = _text(body, "model")
    model = gateway.models.find(name)
    table = _table(body, "shadow")
    shadow = read_shadow(table, model.versions, model.current) if table is not None else None
    gateway.rollouts.set_shadow(name, shadow)
    return await gateway.rollouts.describe(name)


async def start_rollout(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Start a canary (``rollout``: its settings; ``id`` names it)."""
    name = _text(body, "model")
    model = gateway.models.find(name)
    table = _table(body, "rollout")
    if table is None:
        raise BadRequest("rollout: missing")
    config = read_rollout(table, model.versions, model.current)
    gateway.rollouts.start_rollout(name, config, _text(body, "id"), _time(body))
    return await gateway.rollouts.describe(name)


def _step(body: dict[str, Any]) -> int:
    step = body.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        raise BadRequest("step: expected a whole number")
    return step


async def advance_rollout(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Move a rollout one step up (the controller's decision)."""
    name = _text(body, "model")
    gateway.rollouts.advance(name, _text(body, "id"), _step(body), _time(body))
    return await gateway.rollouts.describe(name)


async def pause_rollout(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Hold a rollout at its step."""
    name = _text(body, "model")
    gateway.rollouts.pause(name)
    return await gateway.rollouts.describe(name)


async def resume_rollout(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Let a paused rollout go on."""
    name = _text(body, "model")
    gateway.rollouts.resume(name, _time(body))
    return await gateway.rollouts.describe(name)


async def end_rollout(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Roll back (the controller) or abort (an admin): the baseline takes all traffic."""
    name = _text(body, "model")
    outcome = body.get("outcome")
    if outcome not in (ROLLED_BACK, ABORTED):
        raise BadRequest(f"outcome: expected {ROLLED_BACK!r} or {ABORTED!r}")
    rollout = body.get("id")
    if rollout is not None and not isinstance(rollout, str):
        raise BadRequest("id: expected a string")
    gateway.rollouts.end(name, str(outcome), _text(body, "reason"), _time(body), rollout)
    return await gateway.rollouts.describe(name)


ROLLOUT_OPERATIONS = {
    "set_split": set_split,
    "set_shadow": set_shadow,
    "start_rollout": start_rollout,
    "advance_rollout": advance_rollout,
    "pause_rollout": pause_rollout,
    "resume_rollout": resume_rollout,
    "end_rollout": end_rollout,
}
"""The rollouts' admin changes, by the name the state store records them under."""
