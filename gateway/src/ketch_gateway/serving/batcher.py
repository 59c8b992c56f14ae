"""The model abstraction layer: deadline queues and adaptive batching, per model version.

Requests wait in one queue per model version, earliest deadline first. Each
replica runs ``max_in_flight`` workers that pull the next batch from the queue
when they are free, so a slow replica takes less work. A batch takes as many
rows as the replica's controller allows (never more than the wrapper's maximum),
concatenated, sent in one ModelInfer call, and split back per request.

Admission and dispatch know the deadlines (see :mod:`.admission`): a request
that the replicas, at their measured pace, cannot answer before its deadline
given the queue ahead of it is refused at once (503 with ``Retry-After``); a
batch only takes requests that its replica finishes in time even if the batch
runs slow (those no replica can finish any more are answered as expired); and
when every request of a batch in flight has been given up, its call is
cancelled, so that the wrapper can stop (``ketch serve`` then skips the batch,
or stops the framework where it can).

Every accepted request is answered: with its rows' outputs; with a timeout when
its deadline passes first (a queued request is then never sent); with 503 when
no replica can take it. A batch held by a replica that turns out unreachable is
put back once, for another replica, if its deadline allows. A replica that leaves
(removed, or gone from DNS) finishes the batch it holds and takes no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ketch import WrapperCallError
from ketch_gateway.control.config import BatchingConfig
from ketch_gateway.errors import ApiError, BadRequest, GatewayTimeout, ServiceUnavailable
from ketch_gateway.metrics import Metrics
from ketch_gateway.observability.trace_context import current_trace, start_batch
from ketch_gateway.serving.admission import Capacity, ReplicaLane, measure_capacity
from ketch_gateway.serving.batch_control import AimdBatchSize, BatchSizeController, FixedBatchSize
from ketch_gateway.serving.deadline_queue import DeadlineQueue, PendingRequest, QueueFull
from ketch_gateway.serving.predictor import Dispatcher, Prediction
from ketch_gateway.serving.replicas import UNREACHABLE_CODES, Replica, ReplicaSet, wrapper_error

__all__ = ["BatchingPredictor"]

_log = logging.getLogger(__name__)

UNHEALTHY_PAUSE_S = 0.05
MIN_CALL_TIMEOUT_S = 0.001
BLOCKED_PAUSE_S = 0.005
"""How long a worker waits for new requests when every queued one is left for quicker replicas."""


class CallAbandoned(Exception):
    """Every request of a batch was given up, so its call to the replica was cancelled."""


def _joined_inputs(requests: list[PendingRequest]) -> Mapping[str, np.ndarray]:
    """One batch's inputs: the requests' rows, concatenated in order."""
    if len(requests) == 1:
        return requests[0].inputs
    return {
        name: np.concatenate([request.inputs[name] for request in requests])
        for name in requests[0].inputs
    }


def _hand_out(requests: list[PendingRequest], outputs: Mapping[str, np.ndarray]) -> None:
    """Give each request still waiting its own rows of the batch's outputs."""
    start = 0
    for request in requests:
        end = start + request.rows
        if not request.future.done():
            request.future.set_result({name: array[start:end] for name, array in outputs.items()})
        start = end


def _row_shapes(inputs: Mapping[str, np.ndarray]) -> tuple[tuple[int, ...], ...]:
    return tuple(array.shape[1:] for array in inputs.values())


class BatchingPredictor(Dispatcher):
    """A model version's queue and the workers that batch it onto its replicas."""

    def __init__(
        self,
        model: str,
        version: str,
        replicas: ReplicaSet,
        config: BatchingConfig,
        metrics: Metrics,
    ) -> None:
        self.model = model
        self.version = version
        self.replicas = replicas
        self.config = config
        self.metrics = metrics
        self.objective_s = (config.objective_ms or 20.0) / 1000.0
        self.max_batch = config.max_batch
        self.queue = DeadlineQueue(config.max_queue)
        self._workers: dict[Replica, list[asyncio.Task[None]]] = {}
        self._lanes: dict[Replica, ReplicaLane] = {}
        self._call_numbers = itertools.count()
        self._sending: set[asyncio.Task[Any]] = set()
        labels = (model, version)
        self._depth = metrics.queue_depth.labels(*labels)
        self._batch_size = metrics.batch_size.labels(*labels)
        self._queue_wait = metrics.queue_wait.labels(*labels)
        self._wait_ratio = metrics.queue_wait_ratio.labels(*labels)
        self._shed_late = metrics.shed.labels(*labels, "deadline")
        self._shed_full = metrics.shed.labels(*labels, "full")
        self._capacity = metrics.capacity.labels(*labels)
        self._cancelled = metrics.cancelled_calls.labels(*labels)
        self._expired_queued = metrics.expired.labels(*labels, "queued")
        self._expired_in_flight = metrics.expired.labels(*labels, "in_flight")

    # --- configuration ---------------------------------------------------------------------

    def set_objective(self, seconds: float) -> None:
        """The batch latency the AIMD controllers aim under (unless configured explicitly)."""
        if self.config.objective_ms is None:
            self.objective_s = seconds
            for lane in self._lanes.values():
                if isinstance(lane.controller, AimdBatchSize):
                    lane.controller.objective_s = seconds

    def set_max_batch(self, rows: int | None) -> None:
        """Never send more rows than this in one call (the wrapper's declared maximum)."""
        bounds = [b for b in (rows, self.config.max_batch) if b]
        self.max_batch = min(bounds) if bounds else None
        for lane in self._lanes.values():
            lane.controller.limit(self.max_batch)

    def _controller(self) -> BatchSizeController:
        if self.config.policy == "fixed":
            return FixedBatchSize(self.config.size, self.max_batch)
        return AimdBatchSize(
            self.objective_s,
            step=self.config.step,
            margin=self.config.margin,
            decrease=self.config.decrease,
            maximum=self.max_batch,
        )

    # --- replicas ----------------------------------------------------------------------------

    def replicas_changed(self) -> None:
        """Start workers for new replicas; let those of removed ones finish and stop.

        A removed replica's idle workers stop at once; one that holds a batch sends it
        and then stops.
        """
        loop = asyncio.get_running_loop()
        current = set(self.replicas.replicas)
        workers = self.config.max_in_flight
        for replica in current - set(self._workers):
            lane = ReplicaLane(replica, self._controller(), workers)
            self._lanes[replica] = lane
            self._workers[replica] = [loop.create_task(self._work(lane)) for _ in range(workers)]
        for replica in set(self._workers) - current:
            for task in self._workers.pop(replica):
                if task not in self._sending:
                    task.cancel()
            self._lanes.pop(replica, None)

    def target(self, replica: Replica) -> int | None:
        """The replica's current batch size target."""
        lane = self._lanes.get(replica)
        return lane.controller.target() if lane else None

    def capacity(self) -> Capacity | None:
        """What the healthy replicas serve now, once they have been timed."""
        return measure_capacity(self._lanes.values(), asyncio.get_running_loop().time())

    # --- the request side --------------------------------------------------------------------

    async def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        timeout: float,
        outputs: Sequence[str] | None = None,
    ) -> Prediction:
        """Queue the rows, wait (at most ``timeout`` seconds) for their outputs."""
        rows = len(next(iter(inputs.values())))
        if self.max_batch and rows > self.max_batch:
            raise BadRequest(
                f"a request of {rows} rows exceeds model {self.model!r}'s maximum batch of "
                f"{self.max_batch} rows"
            )
        loop = asyncio.get_running_loop()
        now = loop.time()
        traced = current_trace()
        request = PendingRequest(
            inputs=inputs,
            rows=rows,
            deadline=now + timeout,
            enqueued=now,
            future=loop.create_future(),
            row_shapes=_row_shapes(inputs),
            trace=traced.stay(self.model, self.version, rows) if traced is not None else None,
        )
        self._admit(request, timeout, now)
        self._depth.set(self.queue.depth)
        # one timer that fails the future, rather than asyncio.wait_for's task, inner future
        # and callbacks: the same outcome at about half the event loop's work per request
        expiry = loop.call_later(timeout, _expire, request.future)
        try:
            answer = await request.future
        except (TimeoutError, asyncio.CancelledError) as error:
            # the caller gave up (its deadline, or an outer one): free the request's place
            if self.queue.discard(request):
                if request.trace is not None:
                    request.trace.left_queue("the deadline passed in the queue")
                self._depth.set(self.queue.depth)
                self._expired_queued.inc()
                self._observe_wait_ratio(request, loop.time())
                stage = "while waiting in the queue"
            else:
                self._expired_in_flight.inc()
                stage = "while its batch was at a replica"
            if isinstance(error, asyncio.CancelledError):
                raise
            raise GatewayTimeout(
                f"model {self.model!r} did not answer within {timeout * 1000:.0f} ms "
                f"(the deadline passed {stage})"
            ) from None
        finally:
            expiry.cancel()
        if outputs:
            return Prediction({name: answer[name] for name in outputs})
        return Prediction(answer)

    def _admit(self, request: PendingRequest, timeout: float, now: float) -> None:
        """Queue the request, or refuse it (503) when it cannot be answered in time."""
        capacity = measure_capacity(self._lanes.values(), now)
        if capacity is not None:
            ahead = self.queue.rows_before(request.deadline)
            answer_in = capacity.answer_in(ahead)
            if now + answer_in > request.deadline:
                self._shed_late.inc()
                if request.trace is not None:
                    request.trace.left_queue("shed: it could not be answered before its deadline")
                raise ServiceUnavailable(
                    f"model {self.model!r} version {self.version!r} cannot answer within "
                    f"{timeout * 1000:.0f} ms: {ahead} rows are queued ahead, and its replicas "
                    f"serve about {capacity.rows_per_s:.0f} rows/s (about "
                    f"{answer_in * 1000:.0f} ms until this request would be answered)",
                    headers={"Retry-After": self._retry_after(capacity, now)},
                )
        try:
            self.queue.put(request)
        except QueueFull:
            self._shed_full.inc()
            if request.trace is not None:
                request.trace.left_queue("shed: the queue is full")
            retry_after = self._retry_after(capacity, now) if capacity else "1"
            raise ServiceUnavailable(
                f"model {self.model!r} version {self.version!r} is overloaded: "
                f"{self.queue.depth} requests are waiting",
                headers={"Retry-After": retry_after},
            ) from None

    def _retry_after(self, capacity: Capacity, now: float) -> str:
        """When to come back: once the rows queued now are served (or their deadlines passed)."""
        last = self.queue.last_deadline
        return capacity.retry_after(self.queue.rows, 0.0 if last is None else last - now)

    # --- the replica side --------------------------------------------------------------------

    async def _work(self, lane: ReplicaLane) -> None:
        replica = lane.replica
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None
        while replica in self._lanes:
            await self.queue.wait()
            if not replica.healthy:
                await asyncio.sleep(UNHEALTHY_PAUSE_S)
                continue
            limit = lane.controller.target()
            if self.config.delay_ms and self.queue.rows < limit:
                await self.queue.wait_for_rows(limit, self.config.delay_ms / 1000.0)
            now = loop.time()
            self._expire_unservable(now)
            batch = self.queue.take(limit, functools.partial(lane.safe_end, now=now))
            if batch:
                self._depth.set(self.queue.depth)
                self._sending.add(me)
                try:
                    await self._send(lane, batch)
                finally:
                    self._sending.discard(me)
            elif self.queue.depth:  # what is queued is left for quicker replicas
                await self.queue.wait_for_rows(self.queue.rows + 1, BLOCKED_PAUSE_S)

    def _expire_unservable(self, now: float) -> None:
        """Answer, as expired, the queued requests that no replica can finish in time."""
        ends = [
            lane.expected_end(1, now)
            for lane in self._lanes.values()
            if lane.replica.healthy and lane.service.known
        ]
        if not ends:
            return
        soonest = min(ends)
        late = self.queue.drop_late(soonest)
        if not late:
            return
        self._depth.set(self.queue.depth)
        for request in late:
            if request.trace is not None:
                request.trace.left_queue("no replica could answer before the deadline")
            self._expired_queued.inc()
            self._observe_wait_ratio(request, now)
            self._fail(
                request,
                GatewayTimeout(
                    f"model {self.model!r} did not answer in time: less time was left before "
                    "the deadline than its replicas take to answer, so it was not sent"
                ),
            )

    def _in_time(self, batch: list[PendingRequest], now: float) -> list[PendingRequest]:
        """The requests still waited for; those whose deadline has passed are answered here."""
        live = []
        for request in batch:
            if request.future.done():
                continue
            if request.deadline <= now:
                if request.trace is not None:
                    request.trace.left_queue("the deadline passed in the queue")
                self._expired_queued.inc()
                self._observe_wait_ratio(request, now)
                self._fail(
                    request,
                    GatewayTimeout(
                        f"model {self.model!r} did not answer in time: the deadline passed while "
                        "the request waited in the queue"
                    ),
                )
                continue
            live.append(request)
        return live

    async def _send(self, lane: ReplicaLane, batch: list[PendingRequest]) -> None:
        replica, controller = lane.replica, lane.controller
        loop = asyncio.get_running_loop()
        now = loop.time()
        live = self._in_time(batch, now)
        if not live:
            return
        for request in live:
            self._queue_wait.observe(now - request.enqueued)
            self._observe_wait_ratio(request, now)
        rows = sum(request.rows for request in live)
        inputs = _joined_inputs(live)
        # the call may run until the last of its requests gives up; it is cancelled then
        timeout = max(max(request.deadline for request in live) - now, MIN_CALL_TIMEOUT_S)
        self._batch_size.observe(rows)
        number = next(self._call_numbers)
        lane.calls[number] = lane.expected_end(rows, now)
        stays = [request.trace for request in live]
        traced = start_batch(stays, self.model, self.version, replica.address, rows)
        metadata = traced.metadata if traced is not None else None
        started = time.perf_counter()
        try:
            with replica.call():
                outputs = await self._call(replica, inputs, timeout, live, metadata)
        except WrapperCallError as error:
            if traced is not None:
                traced.end(f"{error.code}: {error.message}")
            if error.code == "DEADLINE_EXCEEDED":
                controller.record(rows, timeout)
                lane.service.record_at_least(rows, timeout)
                self._requeue_later_deadlines(live, now + timeout)
                return
            await self._failed(lane, live, error)
            return
        except CallAbandoned:
            if traced is not None:
                traced.end("cancelled: every request in the batch was given up")
            self._cancelled.inc()  # every request was given up, and so was the call
            return
        except asyncio.CancelledError:
            if traced is not None:
                traced.end("cancelled: the replica was removed")
            for request in live:  # the replica was removed: its batch goes back
                if not request.future.done():
                    self.queue.put(request, force=True)
            raise
        finally:
            lane.calls.pop(number, None)
        seconds = time.perf_counter() - started
        if traced is not None:
            traced.end()
        self._record_answer(lane, rows, seconds, loop.time())
        _hand_out(live, outputs)

    def _record_answer(self, lane: ReplicaLane, rows: int, seconds: float, now: float) -> None:
        """Learn from one answered batch: batch size, service time, capacity, metrics."""
        replica, controller = lane.replica, lane.controller
        controller.record(rows, seconds)
        lane.service.record(rows, seconds)
        capacity = measure_capacity(self._lanes.values(), now)
        self._capacity.set(capacity.rows_per_s if capacity else 0.0)
        self.metrics.replica_latency.labels(self.model, self.version, replica.address).observe(
            seconds
        )
        self.metrics.batch_target.labels(self.model, self.version, replica.address).set(
            controller.target()
        )

    async def _call(
        self,
        replica: Replica,
        inputs: Mapping[str, np.ndarray],
        timeout: float,
        requests: list[PendingRequest],
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, np.ndarray]:
        """The replica's answer to one batch.

        The call is cancelled once every request is given up (CallAbandoned), so that
        the wrapper can stop working on it. It runs in the worker's own task (a task
        of its own would wait a turn of the busy event loop for every batch).
        """
        worker = asyncio.current_task()
        assert worker is not None
        waiting = len(requests)
        abandoned = finished = False

        def given_up(_: object) -> None:
            nonlocal waiting, abandoned
            waiting -= 1
            if not waiting and not finished:
                abandoned = True
                worker.cancel()

        for request in requests:
            request.future.add_done_callback(given_up)
        try:
            return await replica.client.infer(
                inputs, model=self.model, timeout=timeout, metadata=metadata
            )
        except asyncio.CancelledError:
            if abandoned and worker.cancelling() == 1:  # only the cancellation asked here
                worker.uncancel()
                raise CallAbandoned from None
            raise
        finally:
            finished = True
            for request in requests:
                request.future.remove_done_callback(given_up)

    async def _failed(
        self, lane: ReplicaLane, batch: list[PendingRequest], error: WrapperCallError
    ) -> None:
        replica = lane.replica
        if error.code in UNREACHABLE_CODES:
            replica.failed(error)
            now = asyncio.get_running_loop().time()
            for request in batch:
                if not request.retried and request.deadline > now and not request.future.done():
                    request.retried = True
                    self.queue.put(request, force=True)
                else:
                    self._fail(
                        request,
                        ServiceUnavailable(
                            f"model {self.model!r}: replica {replica.address} is unreachable "
                            "and the retry did not fit the deadline",
                            headers={"Retry-After": "1"},
                        ),
                    )
            return
        if error.code == "INVALID_ARGUMENT" and len(batch) > 1:
            for request in batch:
                await self._send(lane, [request])
            return
        answer = wrapper_error(self.replicas.label, error)
        for request in batch:
            self._fail(request, answer)

    def _requeue_later_deadlines(self, batch: list[PendingRequest], call_deadline: float) -> None:
        """After a call timed out: the requests with time left go back to the queue.

        A batch's call is given the time left to its earliest deadline, so a request
        with a later one (a ``/v2`` call batched with an app's tight objective) still
        has time when the call gives up: it is sent again, in another batch, instead
        of failing with the request that set the call's deadline (504). Each call it
        rides in ends by the deadline of one of its batch, so it is answered by its
        own deadline at the latest.
        """
        for request in batch:
            if request.future.done():
                continue
            if request.deadline > call_deadline:
                self.queue.put(request, force=True)
            else:
                self._fail(
                    request,
                    GatewayTimeout(
                        f"model {self.model!r} did not answer in time: the deadline passed "
                        "while the model computed the request's batch"
                    ),
                )
        self._depth.set(self.queue.depth)

    def _observe_wait_ratio(self, request: PendingRequest, now: float) -> None:
        """Record the share of its time budget that a request spent queued (1: all of it)."""
        budget = request.deadline - request.enqueued
        self._wait_ratio.observe((now - request.enqueued) / budget if budget > 0 else 1.0)

    @staticmethod
    def _fail(request: PendingRequest, error: ApiError) -> None:
        if not request.future.done():
            request.future.set_exception(error)

    async def close(self) -> None:
        """Stop the workers and answer every queued request (the gateway is stopping)."""
        for tasks in self._workers.values():
            for task in tasks:
                task.cancel()
        for tasks in self._workers.values():
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._workers.clear()
        for request in self.queue.drain():
            self._fail(request, ServiceUnavailable("the gateway is shutting down"))

    def describe(self) -> dict[str, Any]:
        """What the admin API shows of it."""
        capacity = self.capacity()
        return {
            "policy": self.config.policy,
            "objective_ms": self.objective_s * 1000.0,
            "queue_depth": self.queue.depth,
            "max_batch": self.max_batch,
            "targets": {r.address: lane.controller.target() for r, lane in self._lanes.items()},
            "service": {r.address: lane.service.describe() for r, lane in self._lanes.items()},
            "capacity_rows_per_s": round(capacity.rows_per_s, 3) if capacity else None,
        }


def _expire(future: asyncio.Future[Any]) -> None:
    """A request's deadline passed: its waiting caller gets a TimeoutError."""
    if not future.done():
        future.set_exception(TimeoutError())
