"""The batch size controllers and the deadline queue, on their own."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ketch_gateway.serving.batch_control import AimdBatchSize, FixedBatchSize
from ketch_gateway.serving.deadline_queue import DeadlineQueue, PendingRequest, QueueFull


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_aimd_grows_additively_while_well_under_the_objective() -> None:
    controller = AimdBatchSize(0.020, step=4, margin=0.1)
    assert controller.target() == 1
    for expected in (5, 9, 13):
        controller.record(controller.target(), 0.005)
        assert controller.target() == expected


def test_aimd_holds_near_the_objective_and_when_batches_are_not_full() -> None:
    controller = AimdBatchSize(0.020, step=4, margin=0.1, start=10)
    controller.record(10, 0.019)
    assert controller.target() == 10
    controller.record(3, 0.001)
    assert controller.target() == 10


def test_aimd_cuts_by_ten_percent_on_a_miss_and_never_below_one() -> None:
    controller = AimdBatchSize(0.020, start=100)
    controller.record(100, 0.030)
    assert controller.target() == 90
    controller.record(90, 0.030)
    assert controller.target() == 81
    small = AimdBatchSize(0.020, start=1)
    small.record(1, 1.0)
    assert small.target() == 1


def test_aimd_respects_the_maximum() -> None:
    controller = AimdBatchSize(0.020, step=50, maximum=64)
    for _ in range(5):
        controller.record(controller.target(), 0.001)
    assert controller.target() == 64
    controller.limit(16)
    assert controller.target() == 16


def test_fixed_size() -> None:
    controller = FixedBatchSize(32)
    controller.record(32, 10.0)
    assert controller.target() == 32
    controller.limit(8)
    assert controller.target() == 8


def request(deadline: float, rows: int = 1, width: int = 4) -> PendingRequest:
    loop = asyncio.get_running_loop()
    return PendingRequest(
        inputs={"x": np.zeros((rows, width))},
        rows=rows,
        deadline=deadline,
        enqueued=0.0,
        future=loop.create_future(),
        row_shapes=((width,),),
    )


@pytest.mark.anyio
async def test_queue_takes_the_earliest_deadlines_first() -> None:
    queue = DeadlineQueue(capacity=10)
    late, early, middle = request(3.0), request(1.0), request(2.0)
    for item in (late, early, middle):
        queue.put(item)
    assert (queue.depth, queue.rows) == (3, 3)
    assert queue.take(2) == [early, middle]
    assert queue.take(5) == [late]
    assert queue.take(5) == []
    assert (queue.depth, queue.rows) == (0, 0)


@pytest.mark.anyio
async def test_queue_is_bounded_and_a_retry_keeps_its_place() -> None:
    queue = DeadlineQueue(capacity=2)
    queue.put(request(1.0))
    queue.put(request(2.0))
    with pytest.raises(QueueFull):
        queue.put(request(3.0))
    queue.put(request(0.5), force=True)
    assert queue.depth == 3


@pytest.mark.anyio
async def test_discarded_requests_are_never_taken() -> None:
    queue = DeadlineQueue(capacity=5)
    gone, kept = request(1.0), request(2.0)
    queue.put(gone)
    queue.put(kept)
    assert queue.discard(gone)
    assert not queue.discard(gone)
    assert queue.take(10) == [kept]


@pytest.mark.anyio
async def test_batches_count_rows_and_keep_one_row_shape() -> None:
    queue = DeadlineQueue(capacity=10)
    three, two, other_shape, one = (
        request(1.0, 3),
        request(2.0, 2),
        request(3.0, 1, width=5),
        request(4.0),
    )
    big = request(0.1, rows=20)
    for item in (three, two, other_shape, one):
        queue.put(item)
    assert queue.take(4) == [three]
    assert queue.take(10) == [two]
    assert queue.take(10) == [other_shape]
    queue.put(big)
    assert queue.take(4) == [big], "a request larger than the batch still goes, alone"


@pytest.mark.anyio
async def test_waiting_for_rows_returns_when_they_arrive_or_time_is_up() -> None:
    queue = DeadlineQueue(capacity=10)
    loop = asyncio.get_running_loop()
    await queue.wait_for_rows(3, 0.05)
    assert queue.rows == 0, "no rows came: it gave up when the time was up"

    async def arrive() -> None:
        await asyncio.sleep(0.01)
        queue.put(request(1.0, rows=3))

    task = loop.create_task(arrive())
    await queue.wait_for_rows(3, 5.0)
    await task
    assert queue.rows == 3
