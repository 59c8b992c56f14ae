"""The state store in one SQLite file (WAL mode): the default, for a single gateway.

Writes commit before the request that made them is answered; in WAL mode with
``synchronous=NORMAL`` a committed write survives the gateway's process dying.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ketch_gateway.stores.contract import AdminChange, PolicyState, StateUpdate

__all__ = ["SqliteStateStore"]

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
CREATE TABLE IF NOT EXISTS queries (
    query_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


class SqliteStateStore:
    """State in one SQLite file (``:memory:`` for none)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
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

    async def record_admin_change(self, operation: str, body: dict[str, Any]) -> None:
        """Append one admin change to the log that a restart replays."""
        with self._lock:
            self._connection.execute(
                "INSERT INTO admin_changes (operation, body, made_at) VALUES (?, ?, ?)",
                (operation, json.dumps(body), time.time()),
            )

    async def admin_changes(self) -> list[AdminChange]:
        """Every admin change, oldest first."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT operation, body FROM admin_changes ORDER BY id"
            ).fetchall()
        return [(operation, json.loads(body)) for operation, body in rows]

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

    def _state(self, app: str, user: str) -> PolicyState | None:
        found = self._connection.execute(
            "SELECT state FROM policy_state WHERE app = ? AND user = ?", (app, user)
        ).fetchone()
        return None if found is None else dict(json.loads(found[0]))

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
                self._connection.execute(
                    "INSERT INTO policy_state (app, user, state, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (app, user) DO UPDATE SET state = excluded.state, "
                    "updated_at = excluded.updated_at",
                    (app, user, json.dumps(state), time.time()),
                )
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
