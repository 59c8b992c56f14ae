"""What an app is asked (a query, a feedback example) and what it answers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AppAnswer", "Feedback", "Query"]


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Query:
    """Rows to answer for an app, for a user (or anyone), as they arrived.

    ``arrived`` is the event loop's time the request came in, from which the app's
    latency objective counts (None: from when the app starts on it). ``id`` names
    the query, so that feedback can say which answer it is about.
    """

    rows: Sequence[Any]
    user: str | None = None
    arrived: float | None = None
    id: str = field(default_factory=_new_id)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One labelled example for an app: the row, its label, whose, and about which query."""

    row: Any
    label: Any
    user: str | None = None
    query_id: str | None = None


@dataclass(frozen=True)
class AppAnswer:
    """One answer per row, whether it is the default output, and why when it is."""

    rows: list[Any]
    default: bool
    query_id: str
    explanation: str | None = None
    model: str | None = None
    sources: Sequence[str] | None = None
    """Per row, where its answer came from (exact, approximate, coalesced, miss) when cached."""
    contributors: list[str] | None = None
    """The models whose answers were combined (correction policies)."""
    confidence: list[float] | None = None
    """Per row, how sure the combined answer is (correction policies)."""
