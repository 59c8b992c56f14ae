"""The admin log in Redis: one order of admin changes for every gateway that shares it.

- The log is a list, and its length is its version: a gateway that has applied
  the first N changes is up to date when the list holds N.
- Appending a change and announcing it is one Lua script (RPUSH, then PUBLISH of
  the new length), so a change is never in the log unannounced because a gateway
  died between two commands.
- A lock (redis-py's :class:`~redis.asyncio.lock.Lock`: a key set with NX and an
  expiry, released by a script that checks its token) keeps the changes of two
  gateways from interleaving: the gateway that holds it first applies what the
  others appended, then its own change, then appends it. So every gateway applies
  the same changes in the same order. The lock expires 30 s after its holder
  stops renewing it (a gateway that died holding it).
- Announcements go out by pub/sub, which delivers only to those connected: a
  gateway that was cut off re-reads from the log what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.lock import Lock
from redis.exceptions import RedisError

from ketch_gateway.background import cancel_and_wait
from ketch_gateway.stores.contract import AdminBusy, AdminChange, ChangeInbox

__all__ = ["RedisAdminLog"]

_log = logging.getLogger(__name__)

APPEND_AND_ANNOUNCE: Final = """
local length = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], length)
return length
"""
LOCK_TTL_S: Final = 30.0
LOCK_RENEW_S: Final = 10.0
LOCK_WAIT_S: Final = 10.0


class _Subscription(ChangeInbox):
    """Announcements on one pub/sub connection."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def wait(self, timeout: float) -> bool:
        """Whether an announcement arrived within ``timeout`` seconds."""
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        return message is not None


class RedisAdminLog:
    """The admin log at ``log_key``, its lock at ``lock_key``, announced on ``channel``."""

    def __init__(self, client: redis.Redis, *, log_key: str, lock_key: str, channel: str) -> None:
        self._client = client
        self.log_key = log_key
        self.lock_key = lock_key
        self.channel = channel
        self._append = client.register_script(APPEND_AND_ANNOUNCE)

    async def record(self, operation: str, body: dict[str, Any]) -> int:
        """Append a change and announce it; the log's new length."""
        entry = json.dumps([operation, body])
        return int(await self._append(keys=[self.log_key], args=[entry, self.channel]))

    async def changes(self, start: int = 0) -> list[AdminChange]:
        """The changes from the ``start``-th on, oldest first."""
        entries = await self._client.lrange(self.log_key, start, -1)
        changes = []
        for entry in entries:
            operation, body = json.loads(entry)
            changes.append((str(operation), dict(body)))
        return changes

    async def count(self) -> int:
        """How many changes the log holds."""
        return int(await self._client.llen(self.log_key))

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Hold the log's lock (renewed while held); AdminBusy if it stays taken 10 s."""
        lock = self._client.lock(
            self.lock_key,
            timeout=LOCK_TTL_S,
            sleep=0.02,
            blocking_timeout=LOCK_WAIT_S,
            thread_local=False,
        )
        if not await lock.acquire():
            raise AdminBusy(
                f"another gateway has been applying an admin change for {LOCK_WAIT_S:g} s"
            )
        renewing = asyncio.get_running_loop().create_task(self._renew(lock))
        try:
            yield
        finally:
            await cancel_and_wait(renewing)
            try:
                await lock.release()
            except Exception as error:  # expired, or the store went away: it expires anyway
                _log.warning("the admin lock was not released (%s); it expires by itself", error)

    @staticmethod
    async def _renew(lock: Lock) -> None:
        while True:
            await asyncio.sleep(LOCK_RENEW_S)
            try:
                await lock.reacquire()
            except RedisError as error:
                _log.warning("the admin lock could not be renewed: %s", error)

    @contextlib.asynccontextmanager
    async def announcements(self) -> AsyncIterator[ChangeInbox]:
        """Subscribe to the log's announcements while the context lasts."""
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            yield _Subscription(pubsub)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
