"""The state store in Redis: for several gateways that share policy state and feedback.

Keys live under a prefix (``ketch:`` by default, or the URL's ``prefix`` query
parameter), joined with ``:``; each part (an app's name, a user) is
percent-encoded first (``:`` becomes ``%3A``, ``%`` becomes ``%25``), so that no
two (app, user) pairs share a key: user ``victim:`` of app ``ens`` and app
``ens:victim`` are ``state:ens:victim%3A`` and ``state:ens%3Avictim:``. A user's
policy state expires ``user_state_ttl_s`` after its last update (Redis's own key
expiry); the app's shared state does not.

Stores written before the parts were encoded differ only in keys whose names hold
``:`` or ``%``. On first use, a store without the ``schema`` key is migrated: feedback
keys and the state keys whose app and user can be told apart (one ``:`` between
them) are renamed; a state key with more than one ``:`` cannot be split safely,
is left as it was and logged (that user's state is learnt afresh).

A policy's state is changed with an optimistic transaction (WATCH, then
MULTI/EXEC, retried on a conflict), so two gateways learning from feedback at the
same time never lose an update. Durability across a Redis restart is
Redis's own: enable its append-only file for that.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import redis.asyncio as redis
from redis.exceptions import WatchError

from ketch_gateway.stores.contract import AdminChange, PolicyState, StateUpdate

__all__ = ["SCHEMA_VERSION", "RedisStateStore"]

MAX_RETRIES = 100
SCHEMA_VERSION: Final = "2"
"""Version 2: key parts are percent-encoded."""

_log = logging.getLogger(__name__)


def _part(text: str) -> str:
    """A key part that holds no ``:`` (nor ``%`` unencoded), so parts never run together."""
    return quote(text, safe="")


def _split_prefix(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    prefix = query.pop("prefix", ["ketch"])[0]
    rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), prefix


def _milliseconds(seconds: float | None) -> int | None:
    return None if seconds is None else max(int(seconds * 1000), 1)


class RedisStateStore:
    """State in Redis, at ``url`` (``redis://host:port/db`` or ``unix:///path/to.sock``)."""

    def __init__(self, url: str, *, user_state_ttl_s: float | None = None) -> None:
        address, prefix = _split_prefix(url)
        self.url = url
        self.prefix = prefix.rstrip(":") + ":"
        self.user_state_ttl_s = user_state_ttl_s
        self._redis = redis.Redis.from_url(address, decode_responses=True)
        self._schema_checked = False
        self._schema_lock = asyncio.Lock()

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(map(_part, parts))

    async def _ready(self) -> None:
        """Migrate a store written before key parts were encoded, once."""
        if self._schema_checked:
            return
        async with self._schema_lock:
            if not self._schema_checked:
                if await self._redis.get(self._key("schema")) != SCHEMA_VERSION:
                    await self._migrate()
                    await self._redis.set(self._key("schema"), SCHEMA_VERSION)
                self._schema_checked = True

    async def _migrate(self) -> None:
        """Rename the keys whose parts the old, unencoded layout joined with ``:``."""
        for kind in ("feedback", "state"):
            start = f"{self.prefix}{kind}:"
            async for key in self._redis.scan_iter(match=f"{start}*"):
                rest = key[len(start) :]
                if ":" not in rest and "%" not in rest:
                    continue  # the same in both layouts
                if kind == "feedback":
                    renamed = self._key(kind, rest)
                elif rest.count(":") == 1:
                    renamed = self._key(kind, *rest.split(":"))
                else:
                    _log.warning(
                        "Redis key %r: cannot tell its app from its user; left as it was", key
                    )
                    continue
                if renamed != key:
                    await self._redis.renamenx(key, renamed)

    async def record_admin_change(self, operation: str, body: dict[str, Any]) -> None:
        """Append one admin change to the log that a restart replays."""
        await self._ready()
        await self._redis.rpush(self._key("admin"), json.dumps([operation, body]))

    async def admin_changes(self) -> list[AdminChange]:
        """Every admin change, oldest first."""
        await self._ready()
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
        await self._ready()
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
        await self._ready()
        entries = await self._redis.lrange(self._key("feedback", app), 0, -1)
        records = [json.loads(entry) for entry in entries]
        return [
            {key: value for key, value in record.items() if key != "received_at"}
            for record in records
            if user is None or record["user"] == user
        ]

    async def load_policy_state(self, app: str, user: str) -> PolicyState | None:
        """A policy's state for an app and user ("" for the app as a whole)."""
        await self._ready()
        found = await self._redis.get(self._key("state", app, user))
        return None if found is None else dict(json.loads(found))

    async def update_policy_state(self, app: str, user: str, update: StateUpdate) -> PolicyState:
        """Read, change and write a policy's state atomically (retrying on a conflict)."""
        await self._ready()
        key = self._key("state", app, user)
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_RETRIES):
                try:
                    await pipe.watch(key)
                    found = await pipe.get(key)
                    state = update(None if found is None else dict(json.loads(found)))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    expiry = self.user_state_ttl_s if user else None
                    pipe.set(key, json.dumps(state), px=_milliseconds(expiry))
                    await pipe.execute()
                    return state
                except WatchError:
                    continue
        raise RuntimeError(f"the state of app {app!r} kept changing under {MAX_RETRIES} retries")

    async def remember_query(self, query_id: str, record: dict[str, Any], ttl_s: float) -> None:
        """Keep what a query needs for its feedback for ``ttl_s`` seconds."""
        await self._redis.set(
            self._key("query", query_id), json.dumps(record), px=_milliseconds(ttl_s)
        )

    async def recall_query(self, query_id: str) -> dict[str, Any] | None:
        """What was remembered of a query, if it has not expired."""
        found = await self._redis.get(self._key("query", query_id))
        return None if found is None else dict(json.loads(found))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
