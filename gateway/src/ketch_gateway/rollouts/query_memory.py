"""What each watched query was answered, by which version, kept for its feedback.

Feedback names its query by id, maybe much later and on another gateway. So each
record is kept in memory (the latest :data:`IN_MEMORY` queries) and written to the
state store (for an hour) by a background task: the request that made it never
waits for the store. A record the store could not take is only in this gateway's
memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from ketch_gateway.background import cancel_and_wait
from ketch_gateway.stores.contract import StateStore

__all__ = ["QueryMemory", "QueryRecord"]

_log = logging.getLogger(__name__)

IN_MEMORY: Final = 10_000
PENDING: Final = 100_000
MEMORY_S: Final = 3600.0
KEY_PREFIX: Final = "rollouts/"


@dataclass(slots=True)
class QueryRecord:
    """One query's answers (one per row), from ``version``; a shadow's when mirrored."""

    model: str
    version: str
    answers: list[Any]
    rows: list[Any] | None = None
    """The rows, for a query of several (feedback names a row by its value)."""
    rollout: str | None = None
    """The id of the rollout the query was part of."""
    shadow_version: str | None = None
    shadow_answers: list[Any] | None = field(default=None)

    def answer_for(self, row: Any) -> Any | None:
        """The answer to ``row`` (the only one, or the one whose row it equals)."""
        return self._for_row(self.answers, row)

    def shadow_answer_for(self, row: Any) -> Any | None:
        """The shadow's answer to ``row`` (None when it was not mirrored or did not answer)."""
        return None if self.shadow_answers is None else self._for_row(self.shadow_answers, row)

    def _for_row(self, answers: list[Any], row: Any) -> Any | None:
        if len(answers) == 1:
            return answers[0]
        for index, sent in enumerate(self.rows or ()):
            if sent == row and index < len(answers):
                return answers[index]
        return None


class QueryMemory:
    """Records by query id: in memory at once, in the store soon after."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._recent: OrderedDict[str, QueryRecord] = OrderedDict()
        self._pending: deque[str] = deque(maxlen=PENDING)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def note(self, query_id: str, record: QueryRecord) -> None:
        """Keep ``record`` (in memory now; queued for the store)."""
        self._recent[query_id] = record
        self._recent.move_to_end(query_id)
        if len(self._recent) > IN_MEMORY:
            self._recent.popitem(last=False)
        self._pending.append(query_id)
        if not self._wake.is_set():
            self._wake.set()

    def known(self, query_id: str) -> QueryRecord | None:
        """The record of ``query_id`` if this gateway still holds it in memory."""
        return self._recent.get(query_id)

    async def recall(self, query_id: str) -> QueryRecord | None:
        """The record of ``query_id``: from memory, else from the store (None: unknown)."""
        found = self._recent.get(query_id)
        if found is not None:
            return found
        stored = await self.store.recall_query(KEY_PREFIX + query_id)
        return None if stored is None else QueryRecord(**stored)

    def start(self) -> None:
        """Write records to the store from now on (until :meth:`stop`)."""
        self._task = asyncio.get_running_loop().create_task(self._write_forever())

    async def stop(self) -> None:
        """Write what is pending, then stop."""
        await cancel_and_wait(self._task)
        self._task = None
        await self._write_pending()

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._write_pending()

    async def _write_pending(self) -> None:
        while self._pending:
            query_id = self._pending.popleft()
            record = self._recent.get(query_id)
            if record is None:
                continue
            try:
                await self.store.remember_query(KEY_PREFIX + query_id, asdict(record), MEMORY_S)
            except Exception as error:  # the store is away: the record stays in memory only
                _log.debug("query %s kept in memory only: %s", query_id, error)
