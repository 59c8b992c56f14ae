"""Deadline-aware admission in parts: service times, capacity, the queue in deadline order."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from in_process import LocalModels

from ketch_gateway.serving.admission import Capacity, ReplicaLane, measure_capacity
from ketch_gateway.serving.batch_control import FixedBatchSize
from ketch_gateway.serving.deadline_queue import DeadlineQueue, PendingRequest
from ketch_gateway.serving.replicas import Replica
from ketch_gateway.serving.service_time import WARM_UP, ServiceTime

# --- service times ----------------------------------------------------------------------------


def test_a_fit_separates_the_cost_per_call_from_the_cost_per_row() -> None:
    service = ServiceTime()
    for rows in [1, 4, 2, 8, 3, 6] * 20:
        service.record(rows, 0.010 + 0.002 * rows)
    assert service.known
    assert service.fixed_s == pytest.approx(0.010, rel=1e-6)
    assert service.per_row_s == pytest.approx(0.002, rel=1e-6)
    assert service.expected(5) == pytest.approx(0.020, rel=1e-6)
    # the first batches missed the fit; their deviation fades as the fit holds
    assert service.deviation_s == pytest.approx(0.0, abs=1e-5)


def test_batches_of_one_size_count_as_cost_per_call() -> None:
    service = ServiceTime()
    known = []
    for _ in range(WARM_UP):
        known.append(service.known)
        service.record(4, 0.042)
    assert not any(known), "too few batches to trust"
    assert service.known
    assert service.fixed_s == pytest.approx(0.042)
    assert service.per_row_s == 0.0
    assert service.expected(1) == pytest.approx(0.042), "cautious for smaller batches"


def test_the_deviation_is_measured_and_the_fit_follows_a_slower_replica() -> None:
    service = ServiceTime()
    for index in range(200):
        service.record(4, 0.040 if index % 2 else 0.050)
    assert service.expected(4) == pytest.approx(0.045, abs=0.002)
    assert service.deviation_s == pytest.approx(0.005, abs=0.001)
    for _ in range(200):
        service.record(4, 0.100)
    assert service.expected(4) == pytest.approx(0.100, abs=0.001)


def test_a_call_that_gave_up_teaches_only_when_it_shows_the_replica_is_slower() -> None:
    service = ServiceTime()
    for _ in range(WARM_UP):
        service.record(2, 0.050)
    service.record_at_least(2, 0.010)
    assert service.batches == WARM_UP, "gave up sooner than a batch takes: nothing learned"
    service.record_at_least(2, 0.500)
    assert service.batches == WARM_UP + 1
    assert service.expected(2) > 0.050
    assert service.describe()["batches"] == WARM_UP + 1


# --- capacity ---------------------------------------------------------------------------------


def lane(models: LocalModels, address: str, seconds: float, *, rows: int = 4) -> ReplicaLane:
    """A healthy replica's lane, timed at ``seconds`` per batch of ``rows`` rows."""
    replica = Replica(address, connect=models.connect)
    replica.healthy = True
    timed = ReplicaLane(replica, FixedBatchSize(rows), workers=1)
    for _ in range(WARM_UP):
        timed.service.record(rows, seconds)
    return timed


def test_nothing_timed_means_no_capacity_to_judge_by(local_models: LocalModels) -> None:
    replica = Replica("untimed:1", connect=local_models.connect)
    replica.healthy = True
    assert measure_capacity([ReplicaLane(replica, FixedBatchSize(4), workers=1)], 0.0) is None
    sick = lane(local_models, "sick:1", 0.1)
    sick.replica.healthy = False
    assert measure_capacity([sick], 0.0) is None


def test_capacity_adds_up_the_replicas_and_waits_for_a_free_worker(
    local_models: LocalModels,
) -> None:
    fast, slow = lane(local_models, "fast:1", 0.1), lane(local_models, "slow:1", 0.2)
    capacity = measure_capacity([fast, slow], 10.0)
    assert capacity is not None
    assert capacity.rows_per_s == pytest.approx(4 / 0.1 + 4 / 0.2)
    assert capacity.round_rows == 8
    assert capacity.batch_s == pytest.approx(0.2), "its own batch may go to the slower one"
    assert capacity.free_in_s == 0.0, "a worker is idle"
    fast.calls[1] = 10.05
    assert measure_capacity([fast, slow], 10.0) == capacity, "the slow replica is still idle"
    slow.calls[2] = 10.15
    busy = measure_capacity([fast, slow], 10.0)
    assert busy is not None
    assert busy.free_in_s == pytest.approx(0.05)


def test_when_a_request_would_be_answered_and_when_to_retry() -> None:
    capacity = Capacity(rows_per_s=40.0, round_rows=4, batch_s=0.1, free_in_s=0.03)
    assert capacity.answer_in(0) == pytest.approx(0.13)
    assert capacity.answer_in(3) == pytest.approx(0.13), "shares the next batch"
    assert capacity.answer_in(4) == pytest.approx(0.03 + 1.1 * 0.1 + 0.1)
    assert capacity.answer_in(17) == pytest.approx(0.03 + 1.1 * 4 * 0.1 + 0.1)
    spread = Capacity(rows_per_s=40.0, round_rows=4, batch_s=0.1, free_in_s=0.03, spread_s=0.01)
    assert spread.answer_in(0) == pytest.approx(0.13 + 2 * 0.01)
    assert spread.answer_in(12) == pytest.approx(0.03 + 1.1 * 3 * 0.1 + 0.1 + 2 * 0.01 * 2)
    assert capacity.retry_after(0, 30.0) == "1"
    assert capacity.retry_after(200, 30.0) == str(math.ceil(200 / 40))
    assert capacity.retry_after(200, 2.5) == "3", "by the last deadline, the queue is gone"


# --- the queue in deadline order --------------------------------------------------------------


def pending(deadline: float, rows: int = 1) -> PendingRequest:
    return PendingRequest(
        inputs={"x": np.zeros((rows, 4))},
        rows=rows,
        deadline=deadline,
        enqueued=0.0,
        future=asyncio.get_running_loop().create_future(),
        row_shapes=((4,),),
    )


@pytest.mark.anyio
async def test_rows_before_a_deadline_count_what_goes_first() -> None:
    queue = DeadlineQueue(capacity=100)
    for deadline, rows in [(1.0, 2), (2.0, 3), (2.0, 1), (3.0, 4), (5.0, 1), (6.0, 2)]:
        queue.put(pending(deadline, rows))
    assert queue.rows_before(0.5) == 0
    assert queue.rows_before(2.0) == 6, "equal deadlines go first: they came earlier"
    assert queue.rows_before(3.5) == 10
    assert queue.rows_before(5.5) == 11
    assert queue.rows_before(9.0) == queue.rows == 13
    assert queue.last_deadline == 6.0


@pytest.mark.anyio
async def test_requests_too_late_for_any_replica_are_dropped_together() -> None:
    queue = DeadlineQueue(capacity=10)
    assert queue.last_deadline is None
    late = [pending(1.0), pending(1.5, rows=2)]
    kept = pending(2.0)
    for request in (kept, *late):
        queue.put(request)
    assert queue.drop_late(2.0) == late
    assert (queue.depth, queue.rows) == (1, 1)
    assert not late[0].queued
    assert queue.take(4) == [kept]


@pytest.mark.anyio
async def test_a_batch_takes_only_what_its_replica_can_finish_in_time() -> None:
    queue = DeadlineQueue(capacity=10)
    now = 10.0

    def expected_end(rows: int) -> float:
        return now + 0.1 + 0.05 * rows

    too_soon, big, fits_two, later, last = (
        pending(10.12),  # no batch ends before it
        pending(10.22, rows=3),  # one row would make it, its three cannot
        pending(10.24),  # a batch of up to two rows ends in time for it
        pending(10.30),
        pending(11.0),
    )
    for request in (last, later, fits_two, big, too_soon):
        queue.put(request)
    assert queue.take(4, expected_end) == [fits_two, later]
    assert queue.depth == 3, "what did not fit stays, for a quicker replica"
    assert queue.take(4, expected_end) == [last]
    assert queue.take(4) == [too_soon, big]
