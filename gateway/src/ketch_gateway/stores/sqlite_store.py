"""The state store in one SQLite file (WAL mode): the default, for a single gateway.

Writes commit before the request that made them is answered; in WAL mode with
``synchronous=NORMAL`` a committed write survives the gateway's process dying.
A user's policy state that feedback has not updated for ``user_state_ttl_s`` is
no longer read, and is deleted by a sweep that runs with updates, at most once
every :data:`SWEEP_INTERVAL_S`; the app's shared state never expires.
Nothing announces admin changes: several gateways share state through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ketch_gateway.stores.contract import AdminChange, ChangeInbox, PolicyState, StateUpdate

__all__ = ["SWEEP_INTERVAL_S", "SqliteStateStore"]

SWEEP_INTERVAL_S = 60.0
"""How often, at most, expired user state is deleted."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS admin_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    operation TEXT NOT NULL,
    body TEXT NOT NULL,
    made_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL,
    user TEXT,
    input TEXT NOT NULL,
    label TEXT NOT NULL,
    query_id TEXT,
    received_at REAL NOT NULL,
    prediction TEXT
);
CREATE INDEX IF NOT EXISTS feedback_by_app_user ON feedback (app, user);
CREATE TABLE IF NOT EXISTS policy_state (
    app TEXT NOT NULL,
    user TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (app, user)
);
CREATE INDEX IF NOT EXISTS policy_state_by_age ON policy_state (updated_at);
CREATE TABLE IF NOT EXISTS queries (
    query_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


class _Silence(ChangeInbox):
    """No other gateway announces changes in a file of one gateway's."""

    async def wait(self, timeout: float) -> bool:
        """Nothing arrives: wait ``timeout`` seconds."""
        await asyncio.sleep(timeout)
        return False


class SqliteStateStore:
    """State in one SQLite file (``:memory:`` for none).

    :param user_state_ttl_s: forget a user's policy state after this long without
        an update (None: keep it).
    :param clock: the time in seconds since the epoch (tests move it on).
    """

    unavailable_errors: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
    """A file that cannot be read or written (disk I/O error, locked, gone)."""

    def __init__(
        self,
        path: str | Path,
        *,
        user_state_ttl_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self.user_state_ttl_s = user_state_ttl_s
        self._clock = clock
        self._next_sweep = 0.0
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(_SCHEMA)
        columns = {row[1] for row in self._connection.execute("PRAGMA table_info(feedback)")}
        if "prediction" not in columns:  # a store written before predictions were recorded
            self._connection.execute("ALTER TABLE feedback ADD COLUMN prediction TEXT")

    async def ping(self) -> None:
        """Return once the file answers a query."""
        with self._lock:
            self._connection.execute("SELECT 1").fetchone()

    async def record_admin_change(self, operation: str, body: dict[str, Any]) -> int:
        """Append one admin change to the log that a restart replays; the log's length."""
        with self._lock:
            self._connection.execute(
                "INSERT INTO admin_changes (operation, body, made_at) VALUES (?, ?, ?)",
                (operation, json.dumps(body), time.time()),
            )
            return self._count()

    async def admin_changes(self, start: int = 0) -> list[AdminChange]:
        """The admin changes from the ``start``-th on, oldest first."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT operation, body FROM admin_changes ORDER BY id LIMIT -1 OFFSET ?",
                (start,),
            ).fetchall()
        return [(operation, json.loads(body)) for operation, body in rows]

    def _count(self) -> int:
        return int(self._connection.execute("SELECT COUNT(*) FROM admin_changes").fetchone()[0])

    async def admin_change_count(self) -> int:
        """How many admin changes the log holds."""
        with self._lock:
            return self._count()

    @contextlib.asynccontextmanager
    async def admin_lock(self) -> AsyncIterator[None]:
        """Nothing to hold off: one gateway's changes are serialized by the gateway itself."""
        yield

    @contextlib.asynccontextmanager
    async def change_announcements(self) -> AsyncIterator[ChangeInbox]:
        """An inbox where nothing arrives (the log is only polled)."""
        yield _Silence()

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
        with self._lock:
            cursor = self._connection.execute(
                "INSERT INTO feedback (app, user, input, label, query_id, received_at, prediction) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    app,
                    user,
                    json.dumps(row),
                    json.dumps(label),
                    query_id,
                    time.time(),
                    None if prediction is None else json.dumps(prediction),
                ),
            )
        return int(cursor.lastrowid or 0)

    async def feedback(self, app: str, user: str | None = None) -> list[dict[str, Any]]:
        """The feedback recorded for an app (and user), oldest first."""
        query = "SELECT id, user, input, label, query_id, prediction FROM feedback WHERE app = ?"
        parameters: tuple[Any, ...] = (app,)
        if user is not None:
            query += " AND user = ?"
            parameters += (user,)
        with self._lock:
            rows = self._connection.execute(query + " ORDER BY id", parameters).fetchall()
        return [
            {
                "id": i,
                "user": u,
                "input": json.loads(x),
                "label": json.loads(y),
                "query_id": q,
                "prediction": None if p is None else json.loads(p),
            }
            for i, u, x, y, q, p in rows
        ]

    def _oldest_kept(self, now: float) -> float:
        """The oldest update time of user state still read (everything without a TTL)."""
        return -math.inf if self.user_state_ttl_s is None else now - self.user_state_ttl_s

    def _state(self, app: str, user: str) -> PolicyState | None:
        found = self._connection.execute(
            "SELECT state FROM policy_state WHERE app = ? AND user = ? "
            "AND (user = '' OR updated_at >= ?)",
            (app, user, self._oldest_kept(self._clock())),
        ).fetchone()
        return None if found is None else dict(json.loads(found[0]))

    def _sweep(self, now: float) -> None:
        """Delete expired user state, at most once every SWEEP_INTERVAL_S."""
        if self.user_state_ttl_s is None or now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL_S
        self._connection.execute(
            "DELETE FROM policy_state WHERE user != '' AND updated_at < ?",
            (self._oldest_kept(now),),
        )

    async def load_policy_state(self, app: str, user: str) -> PolicyState | None:
        """A policy's state for an app and user ("" for the app as a whole)."""
        with self._lock:
            return self._state(app, user)

    async def update_policy_state(self, app: str, user: str, update: StateUpdate) -> PolicyState:
        """Read, change and write a policy's state in one transaction; the new state."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                state = update(self._state(app, user))
                now = self._clock()
                self._connection.execute(
                    "INSERT INTO policy_state (app, user, state, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (app, user) DO UPDATE SET state = excluded.state, "
                    "updated_at = excluded.updated_at",
                    (app, user, json.dumps(state), now),
                )
                self._sweep(now)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")
        return state

    async def remember_query(self, query_id: str, record: dict[str, Any], ttl_s: float) -> None:
        """Keep what a query needs for its feedback for ``ttl_s`` seconds."""
        now = time.time()
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO queries (query_id, record, expires_at) VALUES (?, ?, ?)",
                (query_id, json.dumps(record), now + ttl_s),
            )
            self._connection.execute("DELETE FROM queries WHERE expires_at < ?", (now,))

    async def recall_query(self, query_id: str) -> dict[str, Any] | None:
        """What was remembered of a query, if it has not expired."""
        with self._lock:
            found = self._connection.execute(
                "SELECT record FROM queries WHERE query_id = ? AND expires_at >= ?",
                (query_id, time.time()),
            ).fetchone()
        return None if found is None else dict(json.loads(found[0]))

    async def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._connection.close()
