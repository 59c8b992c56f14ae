"""A thread pool that hands each call to the thread that finished last: the warmest one.

``concurrent.futures.ThreadPoolExecutor`` feeds its threads from one shared queue,
and the thread that has waited longest takes the next item, so calls that come one
after another rotate over every thread the pool ever started. In a wrapper each
thread then meets the framework cold: its caches, its malloc arena and the
framework's per-thread state were last touched many calls ago. This pool keeps its
idle threads on a stack instead: a call goes to the thread that went idle last, so
calls that do not overlap all run on one thread, and more threads start only when
calls overlap. The standard library has no such pool, hence this one.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

__all__ = ["WarmThreadPool"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class _WorkItem:
    """One submitted call and the future that receives its result."""

    __slots__ = ("args", "function", "future", "kwargs")

    def __init__(
        self,
        future: Future[Any],
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.future = future
        self.function = function
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.function(*self.args, **self.kwargs)
        except BaseException as error:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)


class WarmThreadPool(ThreadPoolExecutor):
    """At most ``max_workers`` threads; each call runs on the most recently idle one.

    A ``ThreadPoolExecutor`` by type, so that gRPC's server accepts it, but none of its
    machinery runs: only :meth:`submit` and :meth:`shutdown` are used.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "warm") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._most = max_workers
        self._prefix = thread_name_prefix
        self._guard = threading.Lock()
        self._idle: list[queue.SimpleQueue[_WorkItem | None]] = []
        self._backlog: collections.deque[_WorkItem] = collections.deque()
        self._started: list[threading.Thread] = []
        self._closed = False

    @property
    def idle_threads(self) -> int:
        """How many threads wait for a call."""
        with self._guard:
            return len(self._idle)

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """Run ``fn(*args, **kwargs)`` on the warmest idle thread, a new one, or when one frees."""
        future: Future[_T] = Future()
        item = _WorkItem(future, fn, args, kwargs)
        with self._guard:
            if self._closed:
                raise RuntimeError("cannot submit a call to a pool that was shut down")
            if self._idle:
                self._idle.pop().put(item)
            elif len(self._started) < self._most:
                self._start_thread(item)
            else:
                self._backlog.append(item)
        return future

    def _start_thread(self, first: _WorkItem) -> None:
        inbox: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        inbox.put(first)
        thread = threading.Thread(
            target=self._work,
            args=(inbox,),
            name=f"{self._prefix}_{len(self._started)}",
            daemon=True,
        )
        self._started.append(thread)
        thread.start()

    def _work(self, inbox: queue.SimpleQueue[_WorkItem | None]) -> None:
        item = inbox.get()
        while item is not None:
            item.run()
            del item
            with self._guard:
                if self._backlog:
                    item = self._backlog.popleft()
                    continue
                if self._closed:
                    return
                self._idle.append(inbox)
            item = inbox.get()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls; run (or, with ``cancel_futures``, cancel) the waiting ones."""
        with self._guard:
            self._closed = True
            if cancel_futures:
                for item in self._backlog:
                    item.future.cancel()
                self._backlog.clear()
            idle, self._idle = self._idle, []
            threads = list(self._started)
        for inbox in idle:
            inbox.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
