"""A state store that fails fast while it cannot be reached, and says so.

:class:`GuardedStore` wraps the gateway's store. An operation that fails because
the store cannot be reached (one of the store's ``unavailable_errors``) raises
:class:`StoreUnavailable`: a 503 with ``Retry-After`` whose message names neither
the store's address nor the library's error (those go to the log). From then on
the store is *down*: operations are refused at once, without waiting for a
network timeout each, until it answers again. A watcher pings the store every
half second, so that an outage is noticed (and its end) whether or not requests
touch the store; ``ketch_store_up`` and the readiness answer show the state.

What is refused while the store is down is what must be recorded to be true:
feedback and admin changes. Predictions do not wait for the store: the
correction layer answers from the state it last read (see
:mod:`ketch_gateway.correction.corrector`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, NoReturn, TypeVar

from ketch_gateway.background import cancel_and_wait
from ketch_gateway.errors import ServiceUnavailable
from ketch_gateway.metrics import Metrics
from ketch_gateway.stores.contract import (
    AdminChange,
    ChangeInbox,
    PolicyState,
    StateStore,
    StateUpdate,
)

__all__ = ["GuardedStore", "StoreUnavailable"]

_log = logging.getLogger(__name__)

WATCH_EVERY_S: Final = 0.5
PING_TIMEOUT_S: Final = 1.0

Result = TypeVar("Result")


class StoreUnavailable(ServiceUnavailable):
    """The state store cannot be reached: the operation was not done (503)."""

    def __init__(self) -> None:
        super().__init__(
            "the state store is unavailable; feedback and admin changes cannot be recorded "
            "now (predictions are still answered): retry later",
            headers={"Retry-After": "1"},
        )


class _GuardedInbox(ChangeInbox):
    def __init__(self, inbox: ChangeInbox, guard: GuardedStore) -> None:
        self._inbox = inbox
        self._guard = guard

    async def wait(self, timeout: float) -> bool:
        return await self._guard.guarded("change_announcements", lambda: self._inbox.wait(timeout))


class GuardedStore(StateStore):
    """``backend``, failing fast with StoreUnavailable while it cannot be reached."""

    def __init__(self, backend: StateStore, metrics: Metrics) -> None:
        self.backend = backend
        self.unavailable_errors = backend.unavailable_errors
        self.metrics = metrics
        self.up = True
        self.down_since: float | None = None
        self._watcher: asyncio.Task[None] | None = None
        metrics.store_up.set(1)

    # --- the store's state --------------------------------------------------------------------

    def start_watching(self) -> None:
        """Ping the store every half second from now on."""
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        failures: tuple[type[Exception], ...] = (*self.unavailable_errors, TimeoutError)
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            try:
                async with asyncio.timeout(PING_TIMEOUT_S):
                    await self.backend.ping()
            except failures as error:
                self.went_down(error)
            else:
                self._came_back()

    def went_down(self, error: BaseException) -> None:
        """Mark the store down (once per outage, with a log line)."""
        if not self.up:
            return
        self.up = False
        self.down_since = time.monotonic()
        self.metrics.store_up.set(0)
        _log.warning(
            "the state store is unreachable (%s: %s): predictions go on, feedback and admin "
            "changes get 503 until it answers again",
            type(error).__name__,
            str(error) or "no answer in time",
        )

    def _came_back(self) -> None:
        if self.up:
            return
        down_for = time.monotonic() - (self.down_since or time.monotonic())
        self.up = True
        self.down_since = None
        self.metrics.store_up.set(1)
        _log.warning("the state store answers again (it was unreachable for %.1f s)", down_for)

    def describe(self) -> dict[str, Any]:
        """The store's state, for readiness: up, or down and for how long."""
        if self.up:
            return {"state": "up"}
        down_for = time.monotonic() - (self.down_since or time.monotonic())
        return {"state": "down", "down_for_s": round(down_for, 1)}

    def _refuse(self, operation: str) -> NoReturn:
        self.metrics.store_unavailable.labels(operation).inc()
        raise StoreUnavailable

    async def guarded(self, operation: str, call: Callable[[], Awaitable[Result]]) -> Result:
        """``call()``'s result; StoreUnavailable when the store is down or turns out to be."""
        if not self.up:
            self._refuse(operation)
        try:
            return await call()
        except self.unavailable_errors as error:
            self.went_down(error)
            self._refuse(operation)

    # --- the contract -------------------------------------------------------------------------

    async def ping(self) -> None:
        """Return once the store answers."""
        await self.guarded("ping", self.backend.ping)

    async def record_admin_change(self, operation: str, body: dict[str, Any]) -> int:
        """Append one admin change to the log; the log's length."""
        return await self.guarded(
            "record_admin_change", lambda: self.backend.record_admin_change(operation, body)
        )

    async def admin_changes(self, start: int = 0) -> list[AdminChange]:
        """The admin changes from the ``start``-th on."""
        return await self.guarded("admin_changes", lambda: self.backend.admin_changes(start))

    async def admin_change_count(self) -> int:
        """How many admin changes the log holds."""
        return await self.guarded("admin_change_count", self.backend.admin_change_count)

    @contextlib.asynccontextmanager
    async def admin_lock(self) -> AsyncIterator[None]:
        """Hold off other gateways' admin changes; StoreUnavailable if the lock is unreachable."""
        async with contextlib.AsyncExitStack() as stack:
            await self.guarded(
                "admin_lock", lambda: stack.enter_async_context(self.backend.admin_lock())
            )
            yield

    @contextlib.asynccontextmanager
    async def change_announcements(self) -> AsyncIterator[ChangeInbox]:
        """Announcements of admin changes; waiting raises StoreUnavailable when cut off."""
        async with contextlib.AsyncExitStack() as stack:
            inbox = await self.guarded(
                "change_announcements",
                lambda: stack.enter_async_context(self.backend.change_announcements()),
            )
            yield _GuardedInbox(inbox, self)

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
        """Store one feedback example; its id."""
        return await self.guarded(
            "record_feedback",
            lambda: self.backend.record_feedback(
                app, user=user, row=row, label=label, query_id=query_id, prediction=prediction
            ),
        )

    async def feedback(self, app: str, user: str | None = None) -> list[dict[str, Any]]:
        """The feedback recorded for an app (and user)."""
        return await self.guarded("feedback", lambda: self.backend.feedback(app, user))

    async def load_policy_state(self, app: str, user: str) -> PolicyState | None:
        """A policy's state for an app and user."""
        return await self.guarded(
            "load_policy_state", lambda: self.backend.load_policy_state(app, user)
        )

    async def update_policy_state(self, app: str, user: str, update: StateUpdate) -> PolicyState:
        """Read, change and write a policy's state atomically."""
        return await self.guarded(
            "update_policy_state", lambda: self.backend.update_policy_state(app, user, update)
        )

    async def remember_query(self, query_id: str, record: dict[str, Any], ttl_s: float) -> None:
        """Keep what a query needs for its feedback for a while."""
        await self.guarded(
            "remember_query", lambda: self.backend.remember_query(query_id, record, ttl_s)
        )

    async def recall_query(self, query_id: str) -> dict[str, Any] | None:
        """What was remembered of a query."""
        return await self.guarded("recall_query", lambda: self.backend.recall_query(query_id))

    async def close(self) -> None:
        """Stop watching and close the backend."""
        await cancel_and_wait(self._watcher)
        self._watcher = None
        await self.backend.close()
