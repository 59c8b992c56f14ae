"""BatchingPredictor on its own, over replicas served in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gateway_test_support import SLOW_PLUGIN
from in_process import LocalModels

from ketch_gateway.control.config import BatchingConfig
from ketch_gateway.errors import BadRequest, GatewayTimeout, ServiceUnavailable
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.batcher import BatchingPredictor
from ketch_gateway.serving.direct import DirectPredictor
from ketch_gateway.serving.replicas import Replica, ReplicaSet

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def batcher_over(
    models: LocalModels, addresses: Sequence[str], name: str, **config: Any
) -> BatchingPredictor:
    replicas = ReplicaSet(f"model {name!r}")
    for address in addresses:
        replica = Replica(address, connect=models.connect)
        assert await replica.probe()
        replicas.add(replica)
    batcher = BatchingPredictor(name, "1", replicas, BatchingConfig(**config), Metrics())
    batcher.replicas_changed()
    return batcher


def sent(batcher: BatchingPredictor) -> float:
    """How many batches went to a replica."""
    value = batcher.metrics.registry.get_sample_value(
        "ketch_batch_size_rows_count", {"model": batcher.model, "version": "1"}
    )
    return value or 0.0


@pytest.fixture
async def digits_batcher(
    local_models: LocalModels, digits_model: Path
) -> AsyncIterator[BatchingPredictor]:
    address = local_models.serve("digits", "sklearn", digits_model, max_batch=16)
    batcher = await batcher_over(
        local_models, [address], "digits", objective_ms=50.0, step=8, delay_ms=5.0
    )
    batcher.set_max_batch(16)
    yield batcher
    await batcher.close()


@pytest.fixture
async def slow_batcher(local_models: LocalModels, softmax_model: Path) -> AsyncIterator[Any]:
    address = local_models.serve(
        "slow", SLOW_PLUGIN, softmax_model, options={"predict_delay": "0.3"}
    )
    batcher = await batcher_over(
        local_models, [address], "slow", policy="fixed", size=1, max_queue=2
    )
    yield batcher
    await batcher.close()


async def test_concurrent_requests_share_batches_and_get_their_own_rows(
    digits_batcher: BatchingPredictor, digits: Any, digits_classifier: Any
) -> None:
    rows = digits[0][:64]
    answers = await asyncio.gather(
        *(digits_batcher.predict({"input": rows[i : i + 1]}, timeout=10) for i in range(64))
    )
    got = [int(answer.outputs["predict"][0]) for answer in answers]
    assert got == digits_classifier.predict(rows).tolist()
    assert all(answer.sources is None for answer in answers)
    assert 0 < sent(digits_batcher) < 64
    assert all(1 <= target <= 16 for target in digits_batcher.describe()["targets"].values())


async def test_only_the_outputs_asked_for_come_back(digits_batcher: BatchingPredictor) -> None:
    answer = await digits_batcher.predict(
        {"input": np.zeros((2, 64))}, timeout=10, outputs=["predict"]
    )
    assert list(answer.outputs) == ["predict"]


async def test_a_request_over_the_maximum_batch_is_refused(
    digits_batcher: BatchingPredictor,
) -> None:
    with pytest.raises(BadRequest, match="maximum batch of 16 rows"):
        await digits_batcher.predict({"input": np.zeros((17, 64))}, timeout=10)


async def test_a_deadline_that_passes_in_the_queue_is_answered_and_never_sent(
    slow_batcher: BatchingPredictor,
) -> None:
    row = {"input": np.zeros((1, 64), np.float32)}
    first = asyncio.ensure_future(slow_batcher.predict(row, timeout=10))
    while not sent(slow_batcher):
        await asyncio.sleep(0.01)
    with pytest.raises(GatewayTimeout, match="while waiting in the queue"):
        await slow_batcher.predict(row, timeout=0.05)
    assert len((await first).outputs["label"]) == 1
    assert sent(slow_batcher) == 1
    assert slow_batcher.queue.depth == 0


async def test_a_full_queue_sheds_with_retry_after(slow_batcher: BatchingPredictor) -> None:
    row = {"input": np.zeros((1, 64), np.float32)}
    first = asyncio.ensure_future(slow_batcher.predict(row, timeout=10))
    while not sent(slow_batcher):
        await asyncio.sleep(0.01)
    queued = [asyncio.ensure_future(slow_batcher.predict(row, timeout=10)) for _ in range(2)]
    while slow_batcher.queue.depth < 2:
        await asyncio.sleep(0)
    with pytest.raises(ServiceUnavailable, match="is overloaded") as shed:
        await slow_batcher.predict(row, timeout=10)
    assert shed.value.headers == {"Retry-After": "1"}
    await asyncio.gather(first, *queued)


async def test_closing_answers_what_is_queued(slow_batcher: BatchingPredictor) -> None:
    row = {"input": np.zeros((1, 64), np.float32)}
    waiting = [asyncio.ensure_future(slow_batcher.predict(row, timeout=10)) for _ in range(3)]
    await asyncio.sleep(0.05)
    await slow_batcher.close()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert any(isinstance(o, ServiceUnavailable) and "shutting down" in o.message for o in outcomes)


async def test_a_request_with_time_left_outlives_its_batchs_earlier_deadline(
    local_models: LocalModels, softmax_model: Path
) -> None:
    """A batch's call runs until its latest deadline: the tight request times out, the
    patient one is answered by the same call (not failed with the tight one, nor sent twice)."""
    address = local_models.serve(
        "slow", SLOW_PLUGIN, softmax_model, options={"predict_delay": "0.3"}
    )
    batcher = await batcher_over(local_models, [address], "slow", policy="fixed", size=2)
    row = {"input": np.zeros((1, 64), np.float32)}
    tight, patient = await asyncio.gather(
        batcher.predict(row, timeout=0.1),
        batcher.predict(row, timeout=10),
        return_exceptions=True,
    )
    assert isinstance(tight, GatewayTimeout)
    assert not isinstance(patient, BaseException)
    assert len(patient.outputs["label"]) == 1
    assert sent(batcher) == 1, "together, once"
    await batcher.close()


async def test_a_batch_of_an_unreachable_replica_goes_to_another(
    local_models: LocalModels, digits_model: Path, digits: Any, digits_classifier: Any
) -> None:
    addresses = [local_models.serve("digits", "sklearn", digits_model) for _ in range(2)]
    batcher = await batcher_over(local_models, addresses, "digits")
    local_models.served[addresses[0]].down = True
    rows = digits[0][:20]
    answers = await asyncio.gather(
        *(batcher.predict({"input": rows[i : i + 1]}, timeout=10) for i in range(20))
    )
    assert [int(a.outputs["predict"][0]) for a in answers] == digits_classifier.predict(
        rows
    ).tolist()
    assert [r.healthy for r in batcher.replicas.replicas] == [False, True]
    await batcher.close()


async def test_a_request_the_wrapper_refuses_fails_alone(
    local_models: LocalModels, softmax_model: Path
) -> None:
    address = local_models.serve("softmax", "ketch_conformance.reference:plugin", softmax_model)
    batcher = await batcher_over(local_models, [address], "softmax", delay_ms=50.0, step=8)
    good = batcher.predict({"input": np.zeros((1, 64), np.float32)}, timeout=10)
    bad = batcher.predict({"input": np.zeros((1, 64), np.float64)}, timeout=10)
    outcomes = await asyncio.gather(good, bad, return_exceptions=True)
    assert not isinstance(outcomes[0], BaseException)
    assert isinstance(outcomes[1], BadRequest)
    assert "FP32" in outcomes[1].message
    await batcher.close()


async def test_a_removed_replica_finishes_the_batch_it_holds(
    local_models: LocalModels, softmax_model: Path
) -> None:
    slow = [
        local_models.serve("slow", SLOW_PLUGIN, softmax_model, options={"predict_delay": "0.3"})
        for _ in range(2)
    ]
    batcher = await batcher_over(local_models, slow, "slow", policy="fixed", size=1)
    row = {"input": np.zeros((1, 64), np.float32)}
    pending = asyncio.ensure_future(batcher.predict(row, timeout=10))
    while not any(replica.in_flight for replica in batcher.replicas.replicas):
        await asyncio.sleep(0.01)
    (busy,) = [replica for replica in batcher.replicas.replicas if replica.in_flight]
    batcher.replicas.remove(busy.address)
    batcher.replicas_changed()
    draining = asyncio.ensure_future(busy.drain(timeout=10))

    answer = await pending  # answered by the replica that left, not sent again
    await draining
    assert answer.outputs["probabilities"].shape == (1, 10)
    assert sent(batcher) == 1
    assert busy.retired
    assert not busy.healthy
    assert busy.in_flight == 0
    await batcher.predict(row, timeout=10)  # the one left takes the next
    latency = batcher.metrics.registry.get_sample_value(
        "ketch_replica_latency_seconds_count",
        {"model": "slow", "version": "1", "replica": batcher.replicas.replicas[0].address},
    )
    assert latency == 1
    await batcher.close()


async def test_without_batching_a_request_goes_to_another_replica_when_one_is_gone(
    local_models: LocalModels, digits_model: Path, digits: Any, digits_classifier: Any
) -> None:
    addresses = [local_models.serve("digits", "sklearn", digits_model) for _ in range(2)]
    replicas = ReplicaSet("model 'digits'")
    for address in addresses:
        replica = Replica(address, connect=local_models.connect)
        assert await replica.probe()
        replicas.add(replica)
    local_models.served[addresses[1]].down = True
    direct = DirectPredictor("digits", replicas)
    rows = digits[0][:4]
    answers = [await direct.predict({"input": rows[i : i + 1]}, timeout=10) for i in range(4)]
    assert [int(a.outputs["predict"][0]) for a in answers] == digits_classifier.predict(
        rows
    ).tolist()
    assert [r.healthy for r in replicas.replicas] == [True, False]
    local_models.served[addresses[0]].down = True
    with pytest.raises(ServiceUnavailable, match="no healthy replica"):
        await direct.predict({"input": rows[:1]}, timeout=10)
