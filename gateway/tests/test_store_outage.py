"""The state store goes away: predictions go on, feedback and admin changes get 503 at once.

A gateway in process over a model served in process and a real Redis server that
the tests freeze (SIGSTOP: connections stay open, nothing answers) or kill and
start again from its append-only file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_test_support import (
    AUTH,
    RedisServer,
    metric,
    running_redis,
    two_versions_toml,
    wait_until,
)
from in_process import LocalModels, gateway_client

from ketch_gateway.stores.redis_store import RedisStateStore

BANDIT = """
[[apps]]
name = "bandit"
models = ["digits"]
latency_objective_ms = 5000
policy = "ucb1"
classes = 10
default_output = -1
"""


@pytest.fixture
def outage(
    tmp_path: Path, local_models: LocalModels, digits_model: Path
) -> Iterator[tuple[httpx.Client, RedisServer]]:
    """A gateway over Redis (with its append-only file), and that Redis server."""
    address = local_models.serve("digits", "sklearn", digits_model)
    with running_redis(tmp_path, appendonly=True) as redis:
        text = two_versions_toml(address, redis.url, BANDIT)
        with gateway_client(text, tmp_path, local_models) as client:
            yield client, redis


def teach(client: httpx.Client, digits: Any, index: int, user: str = "ada") -> httpx.Response:
    rows, labels = digits
    return client.post(
        "/apps/bandit/feedback",
        json={"input": rows[index].tolist(), "label": int(labels[index]), "user": user},
    )


def predictions_answer(client: httpx.Client, digits: Any) -> None:
    row = digits[0][0].tolist()
    for user in ("ada", "someone-new", None):
        body: dict[str, Any] = {"input": row} if user is None else {"input": row, "user": user}
        answer = client.post("/apps/bandit/predict", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["default"] is False
    assert client.post("/apps/digits/predict", json={"input": row}).status_code == 200


def test_a_frozen_store_refuses_feedback_and_admin_with_503_and_predictions_go_on(
    outage: tuple[httpx.Client, RedisServer], digits: Any
) -> None:
    client, redis = outage
    assert teach(client, digits, 0).status_code == 200
    predictions_answer(client, digits)

    redis.pause()
    try:
        refused = teach(client, digits, 1)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "state store is unavailable" in refused.json()["error"]
        assert str(redis.socket) not in refused.text
        assert "redis" not in refused.text.lower()
        change = client.put("/admin/models/digits/version", json={"version": "2"}, headers=AUTH)
        assert change.status_code == 503
        assert client.get("/admin/apps/bandit/state", headers=AUTH).status_code == 503
        predictions_answer(client, digits)
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 200  # predictions are answered: the gateway stays ready
        assert ready.json()["store"]["state"] == "down"
        assert metric(client, "ketch_store_up") == 0
        assert metric(client, "ketch_store_unavailable_total") >= 3
        # while it is down, the store is not even asked: refusals take no network time
        before = metric(client, "ketch_store_unavailable_total")
        assert all(teach(client, digits, 2).status_code == 503 for _ in range(5))
        assert metric(client, "ketch_store_unavailable_total") >= before + 5
    finally:
        redis.resume()

    wait_until(lambda: teach(client, digits, 3).status_code == 200)
    assert client.get("/v2/health/ready").json()["store"] == {"state": "up"}
    assert metric(client, "ketch_store_up") == 1
    change = client.put("/admin/models/digits/version", json={"version": "2"}, headers=AUTH)
    assert change.status_code == 200


async def _stored_ids(url: str) -> set[int]:
    store = RedisStateStore(url)
    try:
        return {int(record["id"]) for record in await store.feedback("bandit")}
    finally:
        await store.close()


def test_a_killed_store_keeps_what_it_acknowledged_and_the_gateway_recovers_by_itself(
    outage: tuple[httpx.Client, RedisServer], digits: Any
) -> None:
    client, redis = outage
    acknowledged = [teach(client, digits, index).json()["feedback_id"] for index in range(5)]
    learnt = client.get("/admin/apps/bandit/state", params={"user": "ada"}, headers=AUTH).json()
    assert learnt["state"]["examples"] == 5

    redis.kill()
    assert teach(client, digits, 5).status_code == 503
    predictions_answer(client, digits)  # from the state read before the store went away
    redis.start()

    wait_until(lambda: teach(client, digits, 6).status_code == 200)
    acknowledged.append(teach(client, digits, 7).json()["feedback_id"])
    assert set(acknowledged) <= asyncio.run(_stored_ids(redis.url))
    after = client.get("/admin/apps/bandit/state", params={"user": "ada"}, headers=AUTH).json()
    assert after["state"]["examples"] == 7
