"""The warm thread pool: calls go to the thread that went idle last, and grow only on overlap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from ketch.warm_threads import WarmThreadPool

WAIT_S = 30.0


@pytest.fixture
def pool() -> Iterator[WarmThreadPool]:
    executor = WarmThreadPool(4, thread_name_prefix="test-warm")
    yield executor
    executor.shutdown(wait=True)


def _thread_name() -> str:
    return threading.current_thread().name


def _wait_until_idle(pool: WarmThreadPool, threads: int) -> None:
    """Wait until ``threads`` threads are idle (a result is set just before its thread idles)."""
    deadline = time.monotonic() + WAIT_S
    while pool.idle_threads < threads and time.monotonic() < deadline:
        time.sleep(0.001)
    assert pool.idle_threads == threads


def test_calls_that_do_not_overlap_run_on_one_thread(pool: WarmThreadPool) -> None:
    names = set()
    for _ in range(50):
        names.add(pool.submit(_thread_name).result(timeout=WAIT_S))
        _wait_until_idle(pool, 1)
    assert names == {"test-warm_0"}


def test_overlapping_calls_start_threads_and_the_last_idle_one_runs_next(
    pool: WarmThreadPool,
) -> None:
    release = [threading.Event() for _ in range(3)]
    started = [threading.Event() for _ in range(3)]

    def hold(index: int) -> str:
        started[index].set()
        release[index].wait(WAIT_S)
        return _thread_name()

    futures = [pool.submit(hold, index) for index in range(3)]
    assert all(event.wait(WAIT_S) for event in started)
    for idle, index in enumerate((0, 2, 1), start=1):  # the thread of call 1 goes idle last
        release[index].set()
        futures[index].result(timeout=WAIT_S)
        _wait_until_idle(pool, idle)
    names = [future.result() for future in futures]
    assert sorted(names) == ["test-warm_0", "test-warm_1", "test-warm_2"]
    assert pool.submit(_thread_name).result(timeout=WAIT_S) == names[1]


def test_calls_beyond_the_threads_wait_their_turn_in_order() -> None:
    executor = WarmThreadPool(1)
    gate = threading.Event()
    order: list[int] = []
    try:
        first = executor.submit(gate.wait, WAIT_S)
        later = [executor.submit(order.append, index) for index in range(5)]
        assert not any(future.done() for future in later)
        gate.set()
        assert first.result(timeout=WAIT_S) is True
        for future in later:
            future.result(timeout=WAIT_S)
        assert order == [0, 1, 2, 3, 4]
    finally:
        executor.shutdown()


def test_an_exception_reaches_the_future_and_the_thread_keeps_serving(
    pool: WarmThreadPool,
) -> None:
    def fail() -> None:
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        pool.submit(fail).result(timeout=WAIT_S)
    _wait_until_idle(pool, 1)
    assert pool.submit(_thread_name).result(timeout=WAIT_S) == "test-warm_0"


def test_shutdown_runs_the_waiting_calls_then_refuses_new_ones() -> None:
    executor = WarmThreadPool(1)
    gate = threading.Event()
    executor.submit(gate.wait, WAIT_S)
    waiting = executor.submit(lambda: "ran")
    gate.set()
    executor.shutdown(wait=True)
    assert waiting.result(timeout=0) == "ran"
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(lambda: None)


def test_shutdown_can_cancel_the_waiting_calls() -> None:
    executor = WarmThreadPool(1)
    gate = threading.Event()
    running = executor.submit(gate.wait, WAIT_S)
    waiting = executor.submit(lambda: "ran")
    executor.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert running.result(timeout=WAIT_S) is True
    assert waiting.cancelled()


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WarmThreadPool(0)
