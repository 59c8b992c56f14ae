"""Overload: deadline-aware admission and dispatch, and calls cancelled when nobody waits.

A paced model (a fixed time per batch of up to four rows) gets bursts whose
deadlines cannot all be met. What is checked are counts and orders, never
durations: which requests were refused, which rows reached the model, and when
each batch left compared with its rows' deadlines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from gateway_test_support import ADMIN_TOKEN, gateway_env, metric
from in_process import LocalModel, LocalModels, LocalReplica, gateway_client
from sdk_test_plugins import stalled_wrapper

from ketch import WrapperProcess, current_call, hookimpl
from ketch_conformance.reference import SoftmaxRegressionPlugin
from ketch_gateway.control.config import BatchingConfig
from ketch_gateway.errors import GatewayTimeout, ServiceUnavailable
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.batcher import BatchingPredictor
from ketch_gateway.serving.predictor import Prediction
from ketch_gateway.serving.replicas import Connect, Replica, ReplicaSet
from ketch_gateway.serving.service_time import WARM_UP

pytestmark = pytest.mark.anyio

BATCH_S = 0.1
"""The paced model's time per batch."""
BATCH_ROWS = 4
WAIT_S = 20.0
"""How long a test waits for something that must happen (it happens within a second)."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def row(number: int) -> dict[str, np.ndarray]:
    """A one-row request whose first feature carries its number, so the model's log names it."""
    values = np.zeros((1, 64), np.float32)
    values[0, 0] = number
    return {"input": values}


class RecordingSoftmax(SoftmaxRegressionPlugin):
    """The reference softmax plugin, noting each call: its rows' numbers, and whether the
    call it served was already over."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], bool]] = []

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        numbers = [int(value) for value in inputs["input"][:, 0]]
        self.calls.append((numbers, current_call().cancelled()))
        return super().ketch_batch_predict(model, inputs)

    def numbers(self) -> set[int]:
        """Every row number the model answered."""
        return {number for numbers, _ in self.calls for number in numbers}


Dispatched = list[tuple[float, list[int]]]
"""When each batch left for the replica, and its rows' numbers."""


class RecordingReplica(LocalReplica):
    """A replica served in process that notes when each batch leaves, and its rows' numbers."""

    def __init__(self, served: LocalModel, models: LocalModels, log: Dispatched) -> None:
        super().__init__(served, models.pool)
        self.log = log

    async def infer(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        model: str | None = None,
        version: str = "",
        outputs: Sequence[str] | None = None,
        request_id: str = "",
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Note the batch, then answer it."""
        sent = asyncio.get_running_loop().time()
        self.log.append((sent, [int(value) for value in inputs["input"][:, 0]]))
        return await super().infer(
            inputs,
            model=model,
            version=version,
            outputs=outputs,
            timeout=timeout,
            metadata=metadata,
        )


async def batcher_over(address: str, connect: Connect, name: str) -> BatchingPredictor:
    replicas = ReplicaSet(f"model {name!r}")
    replica = Replica(address, connect=connect)
    assert await replica.probe()
    replicas.add(replica)
    config = BatchingConfig(policy="fixed", size=BATCH_ROWS)
    batcher = BatchingPredictor(name, "1", replicas, config, Metrics())
    batcher.replicas_changed()
    return batcher


Paced = tuple[BatchingPredictor, RecordingSoftmax, Dispatched]


@pytest.fixture
async def paced(local_models: LocalModels, softmax_model: Path) -> AsyncIterator[Paced]:
    """A batcher over a model that takes BATCH_S per batch of up to BATCH_ROWS rows."""
    plugin = RecordingSoftmax()
    address = local_models.serve(
        "paced", "recording", softmax_model, predict_delay=BATCH_S, implementation=plugin
    )
    dispatched: Dispatched = []

    def connect(at: str) -> RecordingReplica:
        return RecordingReplica(local_models.served[at], local_models, dispatched)

    batcher = await batcher_over(address, connect, "paced")
    yield batcher, plugin, dispatched
    await batcher.close()


async def warm_up(batcher: BatchingPredictor) -> None:
    """Enough batches for the replica's service time to be known."""
    for number in range(WARM_UP):
        await batcher.predict(row(-1 - number), timeout=WAIT_S)
    assert batcher.capacity() is not None


async def test_a_burst_beyond_capacity_is_shed_at_the_door_and_no_late_batch_is_sent(
    paced: Paced,
) -> None:
    batcher, plugin, dispatched = paced
    await warm_up(batcher)
    loop = asyncio.get_running_loop()
    budget = 5 * BATCH_S  # about 16 rows fit, of the 40 sent at once
    deadlines: dict[int, float] = {}

    async def one(number: int) -> Prediction:
        deadlines[number] = loop.time() + budget
        return await batcher.predict(row(number), timeout=budget)

    outcomes = await asyncio.gather(*(one(n) for n in range(40)), return_exceptions=True)
    kinds = (Prediction, ServiceUnavailable, GatewayTimeout)
    assert all(isinstance(outcome, kinds) for outcome in outcomes), outcomes
    shed = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, ServiceUnavailable)]
    answered = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, Prediction)]
    assert shed, "a burst of ten times what fits in the budget must be shed in part"
    assert answered
    for number in shed:
        refusal = outcomes[number]
        assert isinstance(refusal, ServiceUnavailable)
        assert "cannot answer within 500 ms" in refusal.message
        assert int(refusal.headers["Retry-After"]) >= 1
    assert not set(shed) & plugin.numbers(), "a refused request reached the model"
    assert set(answered) <= plugin.numbers()
    # every row left with at least the model's batch time before its deadline (less half a
    # batch for the event loop between taking the batch and the call starting)
    for sent, numbers in dispatched:
        for number in numbers:
            if number >= 0:
                spare = deadlines[number] - sent
                assert spare > BATCH_S / 2, f"row {number} left {spare * 1000:.0f} ms before"
    assert not [numbers for numbers, over in plugin.calls if over], (
        "the model ran a call that was over"
    )
    assert batcher.queue.depth == 0


async def test_the_refused_are_told_to_retry_after_the_queue_ahead_has_drained(
    paced: Paced,
) -> None:
    batcher, plugin, _ = paced
    await warm_up(batcher)
    budget = 25 * BATCH_S  # about 96 rows of the 100 fit: 24 batches, and one in flight
    outcomes = await asyncio.gather(
        *(batcher.predict(row(n), timeout=budget) for n in range(100)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, ServiceUnavailable)]
    assert refused
    assert all(isinstance(o, Prediction | ServiceUnavailable | GatewayTimeout) for o in outcomes)
    # refused behind more than two seconds' worth of rows (at most 40 rows/s): not "1"
    assert all(int(refusal.headers["Retry-After"]) >= 2 for refusal in refused)
    refused_numbers = {n for n, o in enumerate(outcomes) if isinstance(o, ServiceUnavailable)}
    assert not refused_numbers & plugin.numbers(), "a refused request reached the model"
    assert metric_value(batcher, "ketch_shed_requests_total", reason="deadline") == len(refused)
    assert metric_value(batcher, "ketch_shed_requests_total", reason="full") == 0


def metric_value(batcher: BatchingPredictor, name: str, **labels: str) -> float:
    value = batcher.metrics.registry.get_sample_value(
        name, {"model": batcher.model, "version": "1", **labels}
    )
    return value or 0.0


async def test_before_the_replica_is_timed_nothing_is_refused_for_its_deadline(
    paced: Paced,
) -> None:
    batcher, _, _ = paced
    assert batcher.capacity() is None
    outcomes = await asyncio.gather(
        *(batcher.predict(row(n), timeout=1.5 * BATCH_S) for n in range(12)),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, Prediction | GatewayTimeout) for outcome in outcomes)
    assert any(isinstance(outcome, GatewayTimeout) for outcome in outcomes)


async def test_once_the_replica_is_timed_rows_that_cannot_finish_in_time_are_not_sent(
    paced: Paced,
) -> None:
    batcher, _, dispatched = paced
    loop = asyncio.get_running_loop()
    budget = 5.5 * BATCH_S
    deadlines: dict[int, float] = {}

    async def one(number: int) -> Prediction:
        # each request's own deadline: a busy machine may start them later than planned
        deadlines[number] = loop.time() + budget
        return await batcher.predict(row(number), timeout=budget)

    # admitted untimed: six batches of work for a budget of five and a half
    outcomes = await asyncio.gather(
        *(one(n) for n in range(6 * BATCH_ROWS)), return_exceptions=True
    )
    assert all(isinstance(outcome, Prediction | GatewayTimeout) for outcome in outcomes)
    assert any(isinstance(outcome, GatewayTimeout) for outcome in outcomes)
    timed = dispatched[WARM_UP:]
    assert timed, "batches went out after the replica was timed"
    for sent, numbers in timed:
        # taken only if even a slow batch (at least BATCH_S so far) finishes in time
        spare = min(deadlines[number] for number in numbers) - sent
        assert spare > 0.8 * BATCH_S, f"rows {numbers} left {spare * 1000:.0f} ms before"
    assert metric_value(batcher, "ketch_expired_requests_total", stage="queued") > 0


async def test_a_batch_whose_requests_all_gave_up_is_cancelled_and_its_worker_freed(
    local_models: LocalModels, softmax_model: Path
) -> None:
    plugin = RecordingSoftmax()
    address = local_models.serve(
        "stalled", "recording", softmax_model, predict_delay=60.0, implementation=plugin
    )
    batcher = await batcher_over(address, local_models.connect, "stalled")
    try:
        caller = asyncio.ensure_future(batcher.predict(row(1), timeout=WAIT_S * 2))
        await until(lambda: metric_value(batcher, "ketch_batch_size_rows_count") == 1)
        caller.cancel()  # the caller gives up (an app's objective, a client that left)
        with pytest.raises(asyncio.CancelledError):
            await caller
        await until(lambda: metric_value(batcher, "ketch_cancelled_calls_total") == 1)
        # the only worker is free at once, not when the call's 40 s deadline passes
        follower = asyncio.ensure_future(batcher.predict(row(2), timeout=WAIT_S * 2))
        await until(lambda: metric_value(batcher, "ketch_batch_size_rows_count") == 2)
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower
        assert plugin.calls == [], "the paced model never got past its wait"
    finally:
        await batcher.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (WAIT_S at most)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + WAIT_S
    while not condition() and loop.time() < give_up:
        await asyncio.sleep(0.01)
    assert condition()


# --- through a real ketch serve ---------------------------------------------------------------


@pytest.fixture
def stalled(softmax_model: Path, tmp_path: Path) -> Iterator[tuple[WrapperProcess, Path, Path]]:
    """``ketch serve`` with one worker thread, paced a minute per prediction."""
    with stalled_wrapper(softmax_model, tmp_path, gateway_env(), name="stalled") as wrapper:
        yield wrapper


async def test_the_gateway_cancels_the_grpc_call_and_the_wrapper_stops(
    stalled: tuple[WrapperProcess, Path, Path],
) -> None:
    process, calls, control = stalled
    replicas = ReplicaSet("model 'stalled'")
    replica = Replica(process.address)
    assert await replica.probe()
    replicas.add(replica)
    batcher = BatchingPredictor("stalled", "1", replicas, BatchingConfig(), Metrics())
    batcher.replicas_changed()

    def paced_calls() -> int:
        return len(list(control.glob("call-*")))

    try:
        caller = asyncio.ensure_future(batcher.predict(row(1), timeout=WAIT_S * 2))
        await until(lambda: paced_calls() == 1)  # the wrapper's only thread is in the pacing
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await until(lambda: metric_value(batcher, "ketch_cancelled_calls_total") == 1)
        # the wrapper stopped the paced prediction: its thread takes the next call at once
        follower = asyncio.ensure_future(batcher.predict(row(2), timeout=0.5))
        await until(lambda: paced_calls() == 2)
        with pytest.raises(GatewayTimeout):
            await follower
        assert list(calls.iterdir()) == [], "the model computed a batch nobody waited for"
    finally:
        await batcher.close()
        await replicas.close()


# --- through the gateway's HTTP surfaces ------------------------------------------------------


@pytest.fixture(scope="module")
def overload_gateway(
    tmp_path_factory: pytest.TempPathFactory, local_models: LocalModels, softmax_model: Path
) -> Iterator[httpx.Client]:
    address = local_models.serve(
        "paced", "ketch_conformance.reference:plugin", softmax_model, predict_delay=BATCH_S
    )
    text = f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"

[[models]]
name = "paced"
timeout_ms = 500
  [models.batching]
  policy = "fixed"
  size = {BATCH_ROWS}
  [[models.versions]]
  version = "1"
  addresses = ["{address}"]

[[apps]]
name = "paced"
models = ["paced"]
latency_objective_ms = 500
default_output = "busy"

[[apps]]
name = "strict"
models = ["paced"]
latency_objective_ms = 500
"""
    with gateway_client(text, tmp_path_factory.mktemp("overload"), local_models) as client:
        for _ in range(WARM_UP):
            assert client.post("/v2/models/paced/infer", json=v2_body(0.0)).status_code == 200
        yield client


def v2_body(value: float) -> dict[str, object]:
    """An OIP infer request of one row of ``value``."""
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [value] * 64}
    return {"inputs": [tensor]}


def burst(client: httpx.Client, path: str, body: object, count: int = 40) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: client.post(path, json=body), range(count)))


def test_v2_sheds_what_cannot_be_answered_within_timeout_ms(
    overload_gateway: httpx.Client,
) -> None:
    client = overload_gateway
    shed_before = metric(client, "ketch_shed_requests_total", model="paced", reason="deadline")
    answers = burst(client, "/v2/models/paced/infer", v2_body(0.5))
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {200, 503, 504}, statuses
    assert 200 in statuses
    refused = [answer for answer in answers if answer.status_code == 503]
    assert refused, statuses
    for answer in refused:
        assert "cannot answer within 500 ms" in answer.json()["error"]
        assert int(answer.headers["retry-after"]) >= 1
    shed = metric(client, "ketch_shed_requests_total", model="paced", reason="deadline")
    assert shed - shed_before == len(refused)


def test_the_apps_api_answers_the_excess_with_the_default_output_at_once(
    overload_gateway: httpx.Client,
) -> None:
    answers = burst(overload_gateway, "/apps/paced/predict", {"input": [0.25] * 64})
    assert all(answer.status_code == 200 for answer in answers)
    bodies = [answer.json() for answer in answers]
    defaults = [body for body in bodies if body["default"]]
    assert defaults, "ten times the rows that fit must be answered in part by the default"
    assert any(not body["default"] for body in bodies)
    assert all(body["output"] == "busy" for body in defaults)
    assert any("cannot answer within" in body["explanation"] for body in defaults)


def test_an_app_without_a_default_output_refuses_the_excess_with_retry_after(
    overload_gateway: httpx.Client,
) -> None:
    answers = burst(overload_gateway, "/apps/strict/predict", {"input": [0.75] * 64})
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {200, 503}, statuses
    refused = [answer for answer in answers if answer.status_code == 503]
    assert refused, statuses
    # most are refused at the door; on a busy machine, some admitted ones expire before their
    # turn (the replica slowed down): those are refused too, never left unanswered
    errors = [answer.json()["error"] for answer in refused]
    assert any("cannot answer within" in error for error in errors), errors
    for answer, error in zip(refused, errors, strict=True):
        assert "the app has no default output" in error
        assert int(answer.headers["retry-after"]) >= 1
