"""Following the admin log: every gateway sharing a store applies every admin change.

The state store keeps admin changes as a log whose length is its version.
:class:`AdminFollower` remembers how many of them this gateway has applied (its
*position*) and applies the rest, in order, whenever it learns that the log grew:

- at start-up, every change recorded so far (over the configuration file);
- when another gateway announces a change (Redis pub/sub: within milliseconds);
- at each check of the log's length, every second: a safety net for an
  announcement that was lost;
- after the store was unreachable (or this gateway cut off from it), everything
  appended meanwhile, on reconnection: announcements are only delivered to those
  connected, so the log is re-read from this gateway's position.

A change made on this gateway is applied under the store's admin lock, after
catching up, and then appended: so its position is the log's new length, and
every gateway applies the same changes in the same order. A change that no longer
applies here (its model left this gateway's file) is skipped with a warning, and
its position counted all the same; one that fails here for another reason (a
wrapper it starts does not come up) is logged, and counted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ketch_gateway.background import cancel_and_wait
from ketch_gateway.control.config_reader import ConfigError
from ketch_gateway.errors import ApiError
from ketch_gateway.metrics import Metrics
from ketch_gateway.stores.contract import StateStore
from ketch_gateway.stores.guard import StoreUnavailable

__all__ = ["AdminFollower"]

_log = logging.getLogger(__name__)

CHECK_EVERY_S: Final = 1.0
RECONNECT_PAUSE_S: Final = 0.5
SUBSCRIBE_WAIT_S: Final = 5.0

Apply = Callable[[str, dict[str, Any]], Awaitable[object]]
"""Applies one recorded admin change to this gateway."""


class AdminFollower:
    """A gateway's position in the admin log, and the task that keeps it at the end.

    :param apply: applies a recorded change (raising ApiError or ConfigError when it
        no longer applies).
    :param applied: called after changes were applied (to refresh what depends on them).
    :param lock: held while changes are applied, shared with the changes made here.
    """

    def __init__(
        self,
        store: StateStore,
        metrics: Metrics,
        *,
        apply: Apply,
        applied: Callable[[], None],
        lock: asyncio.Lock,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.position = 0
        self._apply = apply
        self._applied = applied
        self.lock = lock
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def catch_up(self, source: str) -> int:
        """Apply the changes past this gateway's position; how many (hold :attr:`lock`)."""
        count = await self.store.admin_change_count()
        if count < self.position:
            _log.error(
                "the admin log holds %d changes, fewer than the %d this gateway applied: the "
                "store lost data (restarted without its append-only file?); following it "
                "from its end. Restart the gateways to apply the configuration afresh",
                count,
                self.position,
            )
            self.moved_to(count)
            return 0
        if count == self.position:
            return 0
        changes = await self.store.admin_changes(self.position)
        for operation, body in changes:
            try:
                await self._apply(operation, body)
            except (ApiError, ConfigError) as error:
                _log.warning("skipping the recorded admin change %s %s: %s", operation, body, error)
            except Exception:  # one change that fails here must not stop every later one
                _log.exception("the recorded admin change %s %s failed here", operation, body)
            else:
                _log.info("applied the admin change %s %s (%s)", operation, body, source)
            self.metrics.admin_applied.labels(source).inc()
            self.moved_to(self.position + 1)
        self._applied()
        return len(changes)

    def moved_to(self, position: int) -> None:
        """Record that the first ``position`` changes have been applied here."""
        self.position = position
        self.metrics.admin_position.set(position)

    async def start(self) -> None:
        """Follow the log from now on (until :meth:`stop`).

        Returns once subscribed to the announcements (or after 5 s without: the store
        went away meanwhile, and following resumes when it is back), so that a change
        made as soon as the gateway is up is pushed to it, not found by a later check.
        """
        self._task = asyncio.get_running_loop().create_task(self._follow())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                await self._subscribed.wait()

    async def _follow(self) -> None:
        while True:
            try:
                async with self.store.change_announcements() as inbox:
                    self._subscribed.set()
                    source = "resync"
                    while True:
                        async with self.lock:
                            await self.catch_up(source)
                        announced = await inbox.wait(CHECK_EVERY_S)
                        source = "notification" if announced else "poll"
            except StoreUnavailable:
                pass
            except Exception:
                _log.exception("following the admin log failed; trying again")
            await asyncio.sleep(RECONNECT_PAUSE_S)

    async def stop(self) -> None:
        """Stop following."""
        await cancel_and_wait(self._task)
        self._task = None
