"""The call a wrapper is serving: its deadline, and whether its caller has given up.

``ketch serve`` runs each ModelInfer call inside a :class:`CallScope` built from
the gRPC call: the deadline the caller set, and cancellation when the caller
cancels or the deadline passes. The runtime does not call the plugin for a call
that is already over, and a plugin whose framework can stop mid-computation
asks :func:`current_call` for the scope and registers a way to stop with
:meth:`CallScope.on_cancel` (onnxruntime's ``RunOptions.terminate``, say). Outside
a served call, :func:`current_call` answers a scope that never ends, so plugin
code runs the same in process.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final

from ketch.errors import CallCancelled

__all__ = ["CallScope", "current_call", "serving_call"]

_NO_DEADLINE_AFTER_S: Final = 1e8
"""gRPC reports a call without a deadline as one that ends in a very long time."""


class CallScope:
    """One call's deadline (``time.monotonic()`` seconds, or None) and its cancellation.

    Thread-safe: the call runs in one thread while the transport cancels it from another.
    """

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._finished = False
        self.reason = ""

    @classmethod
    def from_time_remaining(cls, seconds: float | None) -> CallScope:
        """A scope whose deadline is ``seconds`` from now (None or a huge value: none)."""
        if seconds is None or seconds > _NO_DEADLINE_AFTER_S:
            return cls()
        return cls(time.monotonic() + seconds)

    def time_left(self) -> float | None:
        """Seconds until the deadline (negative once passed), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def cancelled(self) -> bool:
        """Whether the caller gave up: it cancelled the call, or the deadline passed."""
        return self._cancelled.is_set() or self.expired()

    def cancel(self, reason: str = "the caller cancelled the call") -> None:
        """End the call: wake :meth:`wait`, run the callbacks registered with :meth:`on_cancel`."""
        with self._lock:
            if self._cancelled.is_set() or self._finished:
                return
            self.reason = reason
            self._cancelled.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def finish(self) -> None:
        """The call is over: a later :meth:`cancel` (the transport closing it) runs nothing."""
        with self._lock:
            self._finished = True
            self._callbacks = []

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (from another thread) when the call is cancelled; now if it is."""
        with self._lock:
            if not self._cancelled.is_set():
                if not self._finished:
                    self._callbacks.append(callback)
                return
        callback()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, less if the call ends first; whether it has ended."""
        left = self.time_left()
        if left is not None and left < seconds:
            self._cancelled.wait(max(left, 0.0))
            return True
        return self._cancelled.wait(seconds)

    def check(self, what: str = "the call") -> None:
        """Raise :class:`ketch.CallCancelled` when the caller has given up."""
        if self.expired():
            raise CallCancelled(f"{what} was skipped: its deadline had passed", expired=True)
        if self._cancelled.is_set():
            raise CallCancelled(f"{what} was skipped: {self.reason}", expired=False)


_current: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "ketch_call", default=None
)


def current_call() -> CallScope:
    """The scope of the call this thread serves; one that never ends outside a call."""
    scope = _current.get(None)
    return CallScope() if scope is None else scope


@contextlib.contextmanager
def serving_call(scope: CallScope) -> Iterator[CallScope]:
    """Make ``scope`` the current call for the code run inside the block; finish it after."""
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
        scope.finish()
