"""The gateway's state store: what must survive a restart, and what several gateways share.

It holds the admin changes (a log, replayed over the configuration file on
start-up and followed by every gateway that shares the store), recorded feedback,
the correction policies' state per app and user, and a short memory of which model
answered which query. Two implementations keep the same contract:
:class:`~ketch_gateway.stores.sqlite_store.SqliteStateStore` (one file, the default)
and :class:`~ketch_gateway.stores.redis_store.RedisStateStore` (for several gateways
sharing state). Every write is acknowledged before the request that made it is
answered.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "AdminBusy",
    "AdminChange",
    "ChangeInbox",
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


class AdminBusy(Exception):
    """Another gateway has held the admin lock too long: the change was not made."""


class ChangeInbox(Protocol):
    """Announcements that another gateway appended to the admin log."""

    async def wait(self, timeout: float) -> bool:
        """Whether an announcement arrived within ``timeout`` seconds."""
        ...


class StateStore(Protocol):
    """Durable state, shared by every request of a gateway (and, for Redis, by gateways).

    ``unavailable_errors`` are the exceptions that mean the store cannot be reached
    (rather than a mistake in a request); the gateway answers 503 for them.
    """

    unavailable_errors: tuple[type[Exception], ...]

    async def ping(self) -> None:
        """Return once the store answers; raise one of ``unavailable_errors`` otherwise."""
        ...

    async def record_admin_change(self, operation: str, body: dict[str, Any]) -> int:
        """Append one admin change to the log (and announce it); the log's new length."""
        ...

    async def admin_changes(self, start: int = 0) -> list[AdminChange]:
        """The admin changes from the ``start``-th on (every one by default), oldest first."""
        ...

    async def admin_change_count(self) -> int:
        """How many admin changes the log holds: its version."""
        ...

    def admin_lock(self) -> AbstractAsyncContextManager[None]:
        """Hold off other gateways' admin changes while one is applied and recorded."""
        ...

    def change_announcements(self) -> AbstractAsyncContextManager[ChangeInbox]:
        """Listen for announcements of admin changes (while the context lasts)."""
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


def open_store(location: str, *, user_state_ttl_s: float | None = None) -> StateStore:
    """The store at ``location``: ``redis://``, ``rediss://`` or ``unix://`` URL, else a file.

    ``user_state_ttl_s``: a user's policy state not updated for this long is forgotten.
    """
    if is_redis_location(location):
        from ketch_gateway.stores.redis_store import RedisStateStore

        return RedisStateStore(location, user_state_ttl_s=user_state_ttl_s)
    from ketch_gateway.stores.sqlite_store import SqliteStateStore

    return SqliteStateStore(Path(location), user_state_ttl_s=user_state_ttl_s)
