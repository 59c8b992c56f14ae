"""CachingPredictor on its own, in front of a real dispatcher and a model served in process."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gateway_test_support import SLOW_PLUGIN
from in_process import LocalModels

from ketch import Signature
from ketch_gateway.control.config import CacheConfig, ModelConfig, VersionConfig
from ketch_gateway.errors import ServiceUnavailable
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.caching import CachingPredictor
from ketch_gateway.serving.chain import build_chain
from ketch_gateway.serving.direct import DirectPredictor
from ketch_gateway.serving.predictor import Prediction, Predictor
from ketch_gateway.serving.replicas import Replica, ReplicaSet

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Counted(Predictor):
    """A link that counts the rows that pass it on their way to the next link."""

    def __init__(self, inner: Predictor, address: str) -> None:
        self.inner = inner
        self.address = address
        self.requests: list[int] = []

    async def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        timeout: float,
        outputs: Sequence[str] | None = None,
    ) -> Prediction:
        self.requests.append(len(next(iter(inputs.values()))))
        return await self.inner.predict(inputs, timeout=timeout, outputs=outputs)

    async def close(self) -> None:
        await self.inner.close()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


async def served(models: LocalModels, name: str, plugin: str, path: Path, **kw: Any) -> Counted:
    address = models.serve(name, plugin, path, **kw)
    replicas = ReplicaSet(name)
    replica = Replica(address, connect=models.connect)
    assert await replica.probe()
    replicas.add(replica)
    return Counted(DirectPredictor(name, replicas), address)


async def test_repeats_come_from_the_cache_row_by_row(
    local_models: LocalModels, digits_model: Path, digits: Any, digits_classifier: Any
) -> None:
    inner = await served(local_models, "digits", "sklearn", digits_model)
    cache = CachingPredictor("digits", "1", inner, CacheConfig(exact=True), Metrics())
    rows = digits[0][:4]
    first = await cache.predict({"input": rows[1:2]}, timeout=10)
    assert first.sources == ("miss",)
    answer = await cache.predict({"input": rows[[0, 1, 2, 1]]}, timeout=10)
    assert answer.sources == ("miss", "exact", "miss", "exact")
    assert inner.requests == [1, 2]
    expected = digits_classifier.predict(rows[[0, 1, 2, 1]])
    np.testing.assert_array_equal(answer.outputs["predict"], expected)
    assert cache.describe()["cache"]["entries"] == 3


async def test_lookup_answers_only_what_was_cached(
    local_models: LocalModels, digits_model: Path, digits: Any
) -> None:
    inner = await served(local_models, "digits", "sklearn", digits_model)
    cache = CachingPredictor("digits", "1", inner, CacheConfig(exact=True), Metrics())
    row = {"input": digits[0][5:6]}
    assert cache.lookup(row) is None
    predicted = await cache.predict(row, timeout=10)
    found = cache.lookup(row)
    assert found is not None
    np.testing.assert_array_equal(found["predict"], predicted.outputs["predict"])
    assert inner.lookup(row) is None  # a link that does not cache answers "nothing cached"


async def test_identical_rows_in_flight_share_one_call(
    local_models: LocalModels, softmax_model: Path
) -> None:
    inner = await served(
        local_models, "slow", SLOW_PLUGIN, softmax_model, options={"predict_delay": "0.2"}
    )
    cache = CachingPredictor("slow", "1", inner, CacheConfig(exact=True), Metrics())
    row = {"input": np.full((1, 64), 0.25, np.float32)}
    answers = await asyncio.gather(*(cache.predict(row, timeout=10) for _ in range(4)))
    assert sorted(a.sources or () for a in answers) == [("coalesced",)] * 3 + [("miss",)]
    assert inner.requests == [1]


async def test_a_failure_reaches_the_rows_that_waited_for_it(
    local_models: LocalModels, digits_model: Path
) -> None:
    inner = await served(local_models, "digits", "sklearn", digits_model)
    local_models.served[inner.address].down = True
    cache = CachingPredictor("digits", "1", inner, CacheConfig(exact=True), Metrics())
    row = {"input": np.zeros((1, 64))}
    outcomes = await asyncio.gather(
        *(cache.predict(row, timeout=10) for _ in range(2)), return_exceptions=True
    )
    assert all(isinstance(outcome, ServiceUnavailable) for outcome in outcomes)
    assert cache.lookup(row) is None


async def test_answers_expire_after_their_time_to_live(
    local_models: LocalModels, digits_model: Path
) -> None:
    inner = await served(local_models, "digits", "sklearn", digits_model)
    config = CacheConfig(exact=True, ttl_s=0.05)
    cache = CachingPredictor("digits", "1", inner, config, Metrics())
    row = {"input": np.ones((1, 64))}
    assert (await cache.predict(row, timeout=10)).sources == ("miss",)
    assert (await cache.predict(row, timeout=10)).sources == ("exact",)
    await asyncio.sleep(0.1)
    assert (await cache.predict(row, timeout=10)).sources == ("miss",)


def model_config(cache: CacheConfig) -> ModelConfig:
    return ModelConfig("digits", (VersionConfig("1", ("x:1",)),), "1", cache=cache)


async def test_the_chain_caches_what_its_configuration_and_capabilities_allow(
    local_models: LocalModels, digits_model: Path, digits: Any
) -> None:
    inner = await served(local_models, "digits", "sklearn", digits_model)
    dispatcher = inner.inner
    assert isinstance(dispatcher, DirectPredictor)
    metrics = Metrics()
    assert build_chain(model_config(CacheConfig()), "1", dispatcher, metrics) is dispatcher
    runtime = local_models.served[inner.address].runtime
    assert runtime is not None
    signature: Signature = runtime.signature
    approximate = CacheConfig(exact=True, approximate=True)
    chain = build_chain(model_config(approximate), "1", dispatcher, metrics)
    assert isinstance(chain, CachingPredictor)
    assert chain.approximate is None  # the input is not known yet
    learner = type(signature.capabilities)(observe=True)
    chain = build_chain(model_config(approximate), "1", dispatcher, metrics, signature=signature)
    assert isinstance(chain, CachingPredictor)
    assert chain.approximate is not None
    uncached = build_chain(
        model_config(approximate), "1", dispatcher, metrics, capabilities=learner
    )
    assert uncached is dispatcher
