"""The gateway's state store: what must survive a restart, and what several gateways share.

It holds the admin changes (replayed over the configuration file on start-up),
recorded feedback, the correction policies' state per app and user, and a
short memory of which model answered which query. Two implementations keep the
same contract: :class:`~ketch_gateway.stores.sqlite_store.SqliteStateStore` (one file,
the default) and :class:`~ketch_gateway.stores.redis_store.RedisStateStore` (for several
gateways sharing state). Every write is acknowledged before the request that
made it is answered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "AdminChange",
    "PolicyState",
    "StateStore",
    "StateUpdate",
    "is_redis_location",
    "open_store",
]

AdminChange = tuple[str, dict[str, Any]]
PolicyState = dict[str, Any]
StateUpdate = Callable[[PolicyState | None], PolicyState]
"""From the stored state (None when there is none yet) to the state to store."""

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class StateStore(Protocol):
    """Durable state, shared by every request of a gateway (and, for Redis, by gateways)."""

    async def record_admin_change(self, operation: str, body: dict[str, Any]) -> None:
        """Append one admin change to the log that a restart replays."""
        ...

    async def admin_changes(self) -> list[AdminChange]:
        """Every admin change, oldest first."""
        ...

    async def record_feedback(
        self,
        app: str,
        *,
        user: str | None,
        row: Any,
        label: Any,
        query_id: str | None,
        prediction: Any = None,
    ) -> int:
        """Store one feedback example (and the prediction for it, when known); its id."""
        ...

    async def feedback(self, app: str, user: str | None = None) -> list[dict[str, Any]]:
        """The feedback recorded for an app (and user), oldest first."""
        ...

    async def load_policy_state(self, app: str, user: str) -> PolicyState | None:
        """A policy's state for an app and user ("" for the app as a whole)."""
        ...

    async def update_policy_state(self, app: str, user: str, update: StateUpdate) -> PolicyState:
        """Read, change and write a policy's state as one atomic step; the new state."""
        ...

    async def remember_query(self, query_id: str, record: dict[str, Any], ttl_s: float) -> None:
        """Keep what a query needs for its feedback (which model answered) for a while."""
        ...

    async def recall_query(self, query_id: str) -> dict[str, Any] | None:
        """What was remembered of a query, if it has not expired."""
        ...

    async def close(self) -> None:
        """Release the connection or the file."""
        ...


def is_redis_location(location: str) -> bool:
    """Whether ``location`` names a Redis server rather than a SQLite file."""
    return location.startswith(REDIS_SCHEMES)


def open_store(location: str) -> StateStore:
    """The store at ``location``: ``redis://``, ``rediss://`` or ``unix://`` URL, else a file."""
    if is_redis_location(location):
        from ketch_gateway.stores.redis_store import RedisStateStore

        return RedisStateStore(location)
    from ketch_gateway.stores.sqlite_store import SqliteStateStore

    return SqliteStateStore(Path(location))
