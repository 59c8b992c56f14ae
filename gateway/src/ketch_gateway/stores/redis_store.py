"""The state store in Redis: for several gateways that share policy state and feedback.

Keys live under a prefix (``ketch:`` by default, or the URL's ``prefix`` query
parameter). A policy's state is changed with an optimistic transaction (WATCH,
then MULTI/EXEC, retried on a conflict), so two gateways learning from feedback
at the same time never lose an update. Durability across a Redis restart is
Redis's own: enable its append-only file for that.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as redis
from redis.exceptions import WatchError

from ketch_gateway.stores.contract import AdminChange, PolicyState, StateUpdate

__all__ = ["RedisStateStore"]

MAX_RETRIES = 100


def _split_prefix(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    prefix = query.pop("prefix", ["ketch"])[0]
    rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), prefix


class RedisStateStore:
    """State in Redis, at ``url`` (``redis://host:port/db`` or ``unix:///path/to.sock``)."""

    def __init__(self, url: str) -> None:
        address, prefix = _split_prefix(url)
        self.url = url
        self.prefix = prefix.rstrip(":") + ":"
        self._redis = redis.Redis.from_url(address, decode_responses=True)

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def record_admin_change(self, operation: str, body: dict[str, Any]) -> None:
        """Append one admin change to the log that a restart replays."""
        await self._redis.rpush(self._key("admin"), json.dumps([operation, body]))

    async def admin_changes(self) -> list[AdminChange]:
        """Every admin change, oldest first."""
        entries = await self._redis.lrange(self._key("admin"), 0, -1)
        changes = []
        for entry in entries:
            operation, body = json.loads(entry)
            changes.append((str(operation), dict(body)))
        return changes

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
        identifier = int(await self._redis.incr(self._key("feedback-id")))
        record = {
            "id": identifier,
            "user": user,
            "input": row,
            "label": label,
            "query_id": query_id,
            "prediction": prediction,
            "received_at": time.time(),
        }
        await self._redis.rpush(self._key("feedback", app), json.dumps(record))
        return identifier

    async def feedback(self, app: str, user: str | None = None) -> list[dict[str, Any]]:
        """The feedback recorded for an app (and user), oldest first."""
        entries = await self._redis.lrange(self._key("feedback", app), 0, -1)
        records = [json.loads(entry) for entry in entries]
        return [
            {key: value for key, value in record.items() if key != "received_at"}
            for record in records
            if user is None or record["user"] == user
        ]

    async def load_policy_state(self, app: str, user: str) -> PolicyState | None:
        """A policy's state for an app and user ("" for the app as a whole)."""
        found = await self._redis.get(self._key("state", app, user))
        return None if found is None else dict(json.loads(found))

    async def update_policy_state(self, app: str, user: str, update: StateUpdate) -> PolicyState:
        """Read, change and write a policy's state atomically (retrying on a conflict)."""
        key = self._key("state", app, user)
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_RETRIES):
                try:
                    await pipe.watch(key)
                    found = await pipe.get(key)
                    state = update(None if found is None else dict(json.loads(found)))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, json.dumps(state))
                    await pipe.execute()
                    return state
                except WatchError:
                    continue
        raise RuntimeError(f"the state of app {app!r} kept changing under {MAX_RETRIES} retries")

    async def remember_query(self, query_id: str, record: dict[str, Any], ttl_s: float) -> None:
        """Keep what a query needs for its feedback for ``ttl_s`` seconds."""
        await self._redis.set(
            self._key("query", query_id), json.dumps(record), px=max(int(ttl_s * 1000), 1)
        )

    async def recall_query(self, query_id: str) -> dict[str, Any] | None:
        """What was remembered of a query, if it has not expired."""
        found = await self._redis.get(self._key("query", query_id))
        return None if found is None else dict(json.loads(found))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
