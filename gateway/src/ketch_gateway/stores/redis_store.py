"""The state store in Redis: for several gateways that share policy state and feedback.

Keys live under a prefix (``ketch:`` by default, or the URL's ``prefix`` query
parameter), joined with ``:``; each part (an app's name, a user) is
percent-encoded first (``:`` becomes ``%3A``, ``%`` becomes ``%25``), so that no
two (app, user) pairs share a key: user ``victim:`` of app ``ens`` and app
``ens:victim`` are ``state:ens:victim%3A`` and ``state:ens%3Avictim:``. A user's
policy state expires ``user_state_ttl_s`` after its last update (Redis's own key
expiry); the app's shared state does not. Durability across a Redis restart is
Redis's own: enable its append-only file for that.

Stores written before the parts were encoded differ only in keys whose names hold
``:`` or ``%``. On first use, a store without the ``schema`` key is migrated: feedback
keys and the state keys whose app and user can be told apart (one ``:`` between
them) are renamed; a state key with more than one ``:`` cannot be split safely,
is left as it was and logged (that user's state is learnt afresh).

A policy's state is changed with an optimistic transaction: WATCH the key, read
it, compute the new state in Python, then MULTI/SET/EXEC, which fails (and is
retried) when another gateway wrote the key in between; so two gateways learning
from feedback at the same time never lose an update. Not a Lua script, because
the update is the policy's own numerical code (an SGD step, a least-squares
update), which would have to be written again in Lua. Within one gateway,
updates of the same key wait for each other, so that only other gateways can
conflict.

Every command gives up after ``socket_timeout`` (1 s unless the URL says
otherwise), and is tried once more, on a fresh connection, only when its
connection turned out closed (as after a Redis restart); not ten times with
backoff as redis-py would: a store that does not answer must fail a request fast
(the gateway answers 503), not after seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from ketch_gateway.stores.contract import AdminChange, ChangeInbox, PolicyState, StateUpdate
from ketch_gateway.stores.redis_admin_log import RedisAdminLog

__all__ = ["SCHEMA_VERSION", "RedisStateStore"]

MAX_RETRIES: Final = 100
CONFLICT_PAUSE_S: Final = 0.002
"""At most this long (at random) before retrying a transaction that met a conflict."""
CONNECTION_DEFAULTS: Final[dict[str, Any]] = {
    "socket_timeout": 1.0,
    "socket_connect_timeout": 1.0,
}
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


@dataclass
class _KeyLock:
    """A lock for one key, and how many updates use it (it is dropped when none does)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _milliseconds(seconds: float | None) -> int | None:
    return None if seconds is None else max(int(seconds * 1000), 1)


class RedisStateStore:
    """State in Redis, at ``url`` (``redis://host:port/db`` or ``unix:///path/to.sock``).

    The URL's query may set redis-py's connection options, such as
    ``socket_timeout=2``.
    """

    unavailable_errors: tuple[type[Exception], ...] = (
        RedisConnectionError,
        RedisTimeoutError,
        TimeoutError,
        OSError,
    )

    def __init__(self, url: str, *, user_state_ttl_s: float | None = None) -> None:
        address, prefix = _split_prefix(url)
        self.url = url
        self.prefix = prefix.rstrip(":") + ":"
        self.user_state_ttl_s = user_state_ttl_s
        self._redis = redis.Redis.from_url(
            address,
            decode_responses=True,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            **CONNECTION_DEFAULTS,
        )
        self._admin = RedisAdminLog(
            self._redis,
            log_key=self._key("admin"),
            lock_key=self._key("admin-lock"),
            channel=self._key("admin-changes"),
        )
        self._updating: dict[str, _KeyLock] = {}
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

    async def ping(self) -> None:
        """Return once Redis answers PING."""
        await self._redis.ping()

    async def record_admin_change(self, operation: str, body: dict[str, Any]) -> int:
        """Append one admin change to the log and announce it; the log's length."""
        return await self._admin.record(operation, body)

    async def admin_changes(self, start: int = 0) -> list[AdminChange]:
        """The admin changes from the ``start``-th on, oldest first."""
        return await self._admin.changes(start)

    async def admin_change_count(self) -> int:
        """How many admin changes the log holds."""
        return await self._admin.count()

    def admin_lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold off other gateways' admin changes (a lock in Redis)."""
        return self._admin.lock()

    def change_announcements(self) -> contextlib.AbstractAsyncContextManager[ChangeInbox]:
        """Other gateways' announcements of admin changes (pub/sub)."""
        return self._admin.announcements()

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
        async with self._one_at_a_time(key), self._redis.pipeline(transaction=True) as pipe:
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
                    await asyncio.sleep(random.uniform(0, CONFLICT_PAUSE_S))
        raise RuntimeError(f"the state of app {app!r} kept changing under {MAX_RETRIES} retries")

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, key: str) -> AsyncIterator[None]:
        """Updates of ``key`` by this gateway, one after the other (the lock lives while used)."""
        entry = self._updating.setdefault(key, _KeyLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._updating[key]

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
