"""The last errors a gateway answered or logged, for the dashboard.

Error answers (4xx and 5xx) are recorded by the application's error handlers;
warnings and errors that the gateway's own modules log (a replica that stopped
answering, a wrapper that exited) come through a logging handler. Both land in
one bounded list, newest last.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RecentError", "RecentErrors"]

MESSAGE_LIMIT = 500


@dataclass(frozen=True, slots=True)
class RecentError:
    """One error: when, what kind (``answer`` or ``log``), where, and what it said."""

    time: float
    kind: str
    where: str
    message: str
    status: int | None = None


class RecentErrors(logging.Handler):
    """The last ``capacity`` errors; also a logging handler for the gateway's own warnings."""

    def __init__(self, capacity: int = 50) -> None:
        super().__init__(level=logging.WARNING)
        self._errors: deque[RecentError] = deque(maxlen=capacity)

    def answered(self, method: str, path: str, status: int, message: str) -> None:
        """The gateway answered an error."""
        self._errors.append(
            RecentError(time.time(), "answer", f"{method} {path}", message[:MESSAGE_LIMIT], status)
        )

    def emit(self, record: logging.LogRecord) -> None:
        """A warning or error logged by the gateway."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break logging
            message = str(record.msg)
        self._errors.append(
            RecentError(record.created, "log", record.name, message[:MESSAGE_LIMIT])
        )

    def listing(self) -> list[dict[str, Any]]:
        """Newest first, as JSON values."""
        return [asdict(error) for error in reversed(self._errors)]
