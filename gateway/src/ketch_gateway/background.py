"""Background tasks of the gateway: stopping one cleanly, and never waiting forever.

A library may swallow a cancellation: redis-py's pub/sub read, for one, can absorb
it when the cancellation lands as its own read timeout expires, and go back to
waiting on a connection that stays silent. A gateway whose shutdown waits for such
a task never stops. So :func:`cancel_and_wait` cancels again while the task runs
on (as anyio's cancel scopes do), and after a bounded number of tries leaves the
task behind with a warning rather than hanging the shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

__all__ = ["cancel_and_wait"]

_log = logging.getLogger(__name__)

CANCEL_GRACE_S: Final = 2.0
"""How long a cancelled task has to end before it is cancelled again."""
CANCEL_TRIES: Final = 5
"""How many times a task is cancelled before it is left behind."""


async def cancel_and_wait(
    task: asyncio.Task[Any] | None,
    *,
    grace_s: float = CANCEL_GRACE_S,
    tries: int = CANCEL_TRIES,
) -> None:
    """Cancel ``task`` (if any) and return once it has stopped.

    A task still running ``grace_s`` after a cancellation is cancelled again, up to
    ``tries`` times; then it is left running and a warning names it. An exception the
    task ended with (other than its cancellation) is raised here.
    """
    if task is None:
        return
    for attempt in range(1, tries + 1):
        task.cancel()
        await asyncio.wait({task}, timeout=grace_s)
        if task.done():
            with contextlib.suppress(asyncio.CancelledError):
                task.result()
            return
        _log.warning(
            "background task %s did not stop %.1f s after cancellation %d of %d%s",
            task.get_name(),
            grace_s,
            attempt,
            tries,
            "; cancelling it again" if attempt < tries else "; leaving it behind",
        )
