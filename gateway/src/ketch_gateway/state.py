"""The gateway's state store: admin changes (replayed on restart) and recorded feedback.

SQLite in WAL mode by default: one file, no server, safe across restarts. Every
write commits before the request that made it is answered.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["AdminChange", "SqliteStateStore"]

AdminChange = tuple[str, dict[str, Any]]

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

    def record_admin_change(self, operation: str, body: dict[str, Any]) -> None:
        """Append one admin change to the log that a restart replays."""
        with self._lock:
            self._connection.execute(
                "INSERT INTO admin_changes (operation, body, made_at) VALUES (?, ?, ?)",
                (operation, json.dumps(body), time.time()),
            )

    def admin_changes(self) -> list[AdminChange]:
        """Every admin change, oldest first."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT operation, body FROM admin_changes ORDER BY id"
            ).fetchall()
        return [(operation, json.loads(body)) for operation, body in rows]

    def record_feedback(
        self,
        app: str,
        *,
        user: str | None,
        row: Any,
        label: Any,
        query_id: str | None,
        prediction: Any = None,
    ) -> int:
        """Store one feedback example (and the model's prediction for it, when known); its id."""
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

    def feedback(self, app: str, user: str | None = None) -> list[dict[str, Any]]:
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

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._connection.close()
