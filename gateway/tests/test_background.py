"""Stopping background tasks: a task that swallows its cancellation cannot hang a shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from ketch_gateway.background import cancel_and_wait


async def _swallows_first_cancellation(started: asyncio.Event) -> None:
    """Like redis-py's pub/sub read when a cancellation lands as its own timeout expires."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):  # swallowed: back to waiting, forever
        await asyncio.Event().wait()
    await asyncio.Event().wait()


def test_a_task_that_swallows_a_cancellation_is_cancelled_again_and_stops() -> None:
    async def scenario() -> asyncio.Task[None]:
        started = asyncio.Event()
        task = asyncio.get_running_loop().create_task(_swallows_first_cancellation(started))
        await started.wait()
        await cancel_and_wait(task, grace_s=0.05)
        return task

    task = asyncio.run(scenario())
    assert task.cancelled()


def test_a_task_that_never_stops_is_left_behind_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[bool, int]:
        release = asyncio.Event()
        cancellations = 0

        async def stubborn() -> None:
            nonlocal cancellations
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    cancellations += 1

        task = asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
        await asyncio.sleep(0)
        await cancel_and_wait(task, grace_s=0.01, tries=3)
        left_running = not task.done()
        release.set()
        await task
        return left_running, cancellations

    with caplog.at_level(logging.WARNING, logger="ketch_gateway.background"):
        left_running, cancellations = asyncio.run(scenario())
    assert left_running
    assert cancellations == 3
    assert "stubborn" in caplog.text
    assert "leaving it behind" in caplog.text


def test_an_ordinary_task_stops_at_the_first_cancellation_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(3600))
        await asyncio.sleep(0)
        await cancel_and_wait(task)
        return task

    with caplog.at_level(logging.WARNING, logger="ketch_gateway.background"):
        task = asyncio.run(scenario())
    assert task.cancelled()
    assert caplog.text == ""


def test_the_error_a_task_ended_with_is_raised() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(fails_when_cancelled())
        await asyncio.sleep(0)
        await cancel_and_wait(task)

    with pytest.raises(RuntimeError, match="cleanup failed"):
        asyncio.run(scenario())


def test_no_task_is_nothing_to_stop() -> None:
    asyncio.run(cancel_and_wait(None))
