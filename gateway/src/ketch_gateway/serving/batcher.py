"""The model abstraction layer: deadline queues and adaptive batching, per model version.

Requests wait in one queue per model version, earliest deadline first. Each
replica runs ``max_in_flight`` workers that pull the next batch from the queue
when they are free, so a slow replica takes less work. A batch takes as many
rows as the replica's controller allows (never more than the wrapper's maximum),
concatenated, sent in one ModelInfer call, and split back per request.

Every accepted request is answered: with its rows' outputs; with a timeout when
its deadline passes first (a queued request is then never sent); with 503 when
no replica can take it. A batch held by a replica that turns out unreachable is
put back once, for another replica, if its deadline allows. A replica that leaves
(removed, or gone from DNS) finishes the batch it holds and takes no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ketch import WrapperCallError
from ketch_gateway.control.config import BatchingConfig
from ketch_gateway.errors import ApiError, BadRequest, GatewayTimeout, ServiceUnavailable
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.batch_control import AimdBatchSize, BatchSizeController, FixedBatchSize
from ketch_gateway.serving.deadline_queue import DeadlineQueue, PendingRequest, QueueFull
from ketch_gateway.serving.predictor import Dispatcher, Prediction
from ketch_gateway.serving.replicas import UNREACHABLE_CODES, Replica, ReplicaSet, wrapper_error

__all__ = ["BatchingPredictor"]

_log = logging.getLogger(__name__)

UNHEALTHY_PAUSE_S = 0.05
MIN_CALL_TIMEOUT_S = 0.001


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
        self._controllers: dict[Replica, BatchSizeController] = {}
        self._sending: set[asyncio.Task[Any]] = set()
        labels = (model, version)
        self._depth = metrics.queue_depth.labels(*labels)
        self._batch_size = metrics.batch_size.labels(*labels)
        self._queue_wait = metrics.queue_wait.labels(*labels)
        self._wait_ratio = metrics.queue_wait_ratio.labels(*labels)
        self._shed = metrics.shed.labels(*labels)
        self._expired_queued = metrics.expired.labels(*labels, "queued")
        self._expired_in_flight = metrics.expired.labels(*labels, "in_flight")

    # --- configuration ---------------------------------------------------------------------

    def set_objective(self, seconds: float) -> None:
        """The batch latency the AIMD controllers aim under (unless configured explicitly)."""
        if self.config.objective_ms is None:
            self.objective_s = seconds
            for controller in self._controllers.values():
                if isinstance(controller, AimdBatchSize):
                    controller.objective_s = seconds

    def set_max_batch(self, rows: int | None) -> None:
        """Never send more rows than this in one call (the wrapper's declared maximum)."""
        bounds = [b for b in (rows, self.config.max_batch) if b]
        self.max_batch = min(bounds) if bounds else None
        for controller in self._controllers.values():
            controller.limit(self.max_batch)

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
        for replica in current - set(self._workers):
            self._controllers[replica] = self._controller()
            self._workers[replica] = [
                loop.create_task(self._work(replica)) for _ in range(self.config.max_in_flight)
            ]
        for replica in set(self._workers) - current:
            for task in self._workers.pop(replica):
                if task not in self._sending:
                    task.cancel()
            self._controllers.pop(replica, None)

    def target(self, replica: Replica) -> int | None:
        """The replica's current batch size target."""
        controller = self._controllers.get(replica)
        return controller.target() if controller else None

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
        request = PendingRequest(
            inputs=inputs,
            rows=rows,
            deadline=now + timeout,
            enqueued=now,
            future=loop.create_future(),
            row_shapes=_row_shapes(inputs),
        )
        try:
            self.queue.put(request)
        except QueueFull:
            self._shed.inc()
            raise ServiceUnavailable(
                f"model {self.model!r} version {self.version!r} is overloaded: "
                f"{self.queue.depth} requests are waiting",
                headers={"Retry-After": "1"},
            ) from None
        self._depth.set(self.queue.depth)
        # one timer that fails the future, rather than asyncio.wait_for's task, inner future
        # and callbacks: the same outcome at about half the event loop's work per request
        expiry = loop.call_later(timeout, _expire, request.future)
        try:
            answer = await request.future
        except (TimeoutError, asyncio.CancelledError) as error:
            # the caller gave up (its deadline, or an outer one): free the request's place
            if self.queue.discard(request):
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

    # --- the replica side --------------------------------------------------------------------

    async def _work(self, replica: Replica) -> None:
        controller = self._controllers[replica]
        me = asyncio.current_task()
        assert me is not None
        while replica in self._controllers:
            await self.queue.wait()
            if not replica.healthy:
                await asyncio.sleep(UNHEALTHY_PAUSE_S)
                continue
            limit = controller.target()
            if self.config.delay_ms and self.queue.rows < limit:
                await self.queue.wait_for_rows(limit, self.config.delay_ms / 1000.0)
            batch = self.queue.take(limit)
            if batch:
                self._depth.set(self.queue.depth)
                self._sending.add(me)
                try:
                    await self._send(replica, controller, batch)
                finally:
                    self._sending.discard(me)

    def _in_time(self, batch: list[PendingRequest], now: float) -> list[PendingRequest]:
        """The requests still waited for; those whose deadline has passed are answered here."""
        live = []
        for request in batch:
            if request.future.done():
                continue
            if request.deadline <= now:
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

    async def _send(
        self, replica: Replica, controller: BatchSizeController, batch: list[PendingRequest]
    ) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        live = self._in_time(batch, now)
        if not live:
            return
        for request in live:
            self._queue_wait.observe(now - request.enqueued)
            self._observe_wait_ratio(request, now)
        rows = sum(request.rows for request in live)
        names = list(live[0].inputs)
        inputs = (
            live[0].inputs
            if len(live) == 1
            else {name: np.concatenate([r.inputs[name] for r in live]) for name in names}
        )
        timeout = max(min(request.deadline for request in live) - now, MIN_CALL_TIMEOUT_S)
        self._batch_size.observe(rows)
        started = time.perf_counter()
        try:
            with replica.call():
                outputs = await replica.client.infer(inputs, model=self.model, timeout=timeout)
        except WrapperCallError as error:
            if error.code == "DEADLINE_EXCEEDED":
                controller.record(rows, timeout)
                self._requeue_later_deadlines(live, now + timeout)
                return
            await self._failed(replica, controller, live, error)
            return
        except asyncio.CancelledError:  # the replica was removed: its batch goes back
            for request in live:
                if not request.future.done():
                    self.queue.put(request, force=True)
            raise
        seconds = time.perf_counter() - started
        controller.record(rows, seconds)
        self.metrics.replica_latency.labels(self.model, self.version, replica.address).observe(
            seconds
        )
        self.metrics.batch_target.labels(self.model, self.version, replica.address).set(
            controller.target()
        )
        start = 0
        for request in live:
            end = start + request.rows
            if not request.future.done():
                request.future.set_result(
                    {name: array[start:end] for name, array in outputs.items()}
                )
            start = end

    async def _failed(
        self,
        replica: Replica,
        controller: BatchSizeController,
        batch: list[PendingRequest],
        error: WrapperCallError,
    ) -> None:
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
                await self._send(replica, controller, [request])
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
        return {
            "policy": self.config.policy,
            "objective_ms": self.objective_s * 1000.0,
            "queue_depth": self.queue.depth,
            "max_batch": self.max_batch,
            "targets": {r.address: c.target() for r, c in self._controllers.items()},
        }


def _expire(future: asyncio.Future[Any]) -> None:
    """A request's deadline passed: its waiting caller gets a TimeoutError."""
    if not future.done():
        future.set_exception(TimeoutError())
