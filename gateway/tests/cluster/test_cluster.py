"""Ketch as a cluster, on the bed: two gateways, wrappers found by DNS, one Redis.

Every test runs real processes on hosts of their own (network namespaces): dnsmasq
answering the wrappers' headless name, redis-server, ``ketch serve`` on four wrapper
hosts (three of them in DNS), and one or two ``ketch gateway`` on a Redis key prefix
of the test's own. The scenarios are those an operator of several gateways meets:
an admin change made on one gateway, a wrapper host that joins, one whose link is
cut, Redis going away, two gateways learning from feedback for the same user, and
a gateway that was cut off while another made a change.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import numpy as np
import pytest
from gateway_test_support import metric

from cluster.topology import (
    AUTH,
    PUBLISHED,
    Cluster,
    gateway_toml,
    replica_addresses,
    wait_until,
)
from cluster.traffic import ClosedLoop, Request
from ketch_gateway.stores.redis_store import RedisStateStore

pytestmark = pytest.mark.timeout(900)

Digits = tuple[np.ndarray, np.ndarray]

LEARNING_APPS = """
[[apps]]
name = "bandit"
models = ["digits"]
latency_objective_ms = 1000
policy = "ucb1"
classes = 10
default_output = -1

[[apps]]
name = "personal"
models = ["digits"]
latency_objective_ms = 1000
policy = "personalized"
classes = 10
default_output = -1
"""


def infer_body(row: np.ndarray) -> dict[str, Any]:
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP64", "data": row.tolist()}
    return {"inputs": [tensor]}


def served_version(url: str, row: np.ndarray) -> str:
    """The version of digits that the gateway at ``url`` answers with when none is named."""
    answer = httpx.post(f"{url}/v2/models/digits/infer", json=infer_body(row), timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_version"])


def batches_served(urls: list[str], address: str) -> float:
    """How many batches the replica at ``address`` has answered, over the gateways."""
    return sum(
        metric(url, "ketch_replica_latency_seconds_count", replica=address, version="2")
        for url in urls
    )


def infer_on(urls: list[str], rows: np.ndarray) -> Request:
    def request(client: int, number: int) -> tuple[str, dict[str, Any]]:
        url = urls[client % len(urls)]
        return f"{url}/v2/models/digits/infer", infer_body(rows[number % len(rows)])

    return request


def statuses(outcomes: list[Any]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for outcome in outcomes:
        counted[outcome.status] = counted.get(outcome.status, 0) + 1
    return counted


def test_an_admin_rollback_on_one_gateway_is_served_by_the_other(
    fresh_cluster: Cluster, digits: Digits
) -> None:
    state = fresh_cluster.state_url()
    a = fresh_cluster.start_gateway("gateway-a", gateway_toml(state))
    b = fresh_cluster.start_gateway("gateway-b", gateway_toml(state))
    row = digits[0][0]
    for url in (a, b):
        answer = httpx.post(f"{url}/apps/digits/predict", json={"input": row.tolist()}).json()
        assert answer["default"] is False
    assert served_version(b, row) == "2"

    rolled_back = httpx.put(f"{a}/admin/models/digits/version", json={"version": "1"}, headers=AUTH)
    assert rolled_back.status_code == 200, rolled_back.text
    wait_until(lambda: served_version(b, row) == "1", timeout=30)
    # pushed to gateway-b (pub/sub), not found by its once-a-second check of the log
    assert metric(b, "ketch_admin_changes_applied_total", source="notification") == 1
    assert metric(b, "ketch_admin_changes_applied_total", source="poll") == 0

    # and the other way round: a rollout on gateway-b reaches gateway-a
    rolled_out = httpx.put(f"{b}/admin/models/digits/version", json={"version": "2"}, headers=AUTH)
    assert rolled_out.status_code == 200, rolled_out.text
    wait_until(lambda: served_version(a, row) == "2", timeout=30)
    assert metric(a, "ketch_admin_log_position") == metric(b, "ketch_admin_log_position") == 2


def test_a_wrapper_host_added_to_dns_under_load_gets_traffic_without_a_restart(
    fresh_cluster: Cluster, digits: Digits
) -> None:
    a = fresh_cluster.start_gateway("gateway-a", gateway_toml(fresh_cluster.state_url()))
    gateway = fresh_cluster.gateways["gateway-a"]
    newcomer = fresh_cluster.wrapper_address("wrapper-4")
    assert newcomer not in replica_addresses(a, healthy_only=False)

    with ClosedLoop(infer_on([a], digits[0]), clients=8) as load:
        wait_until(lambda: len(load.outcomes) >= 50, timeout=60)
        fresh_cluster.publish([*PUBLISHED, "wrapper-4"])
        wait_until(lambda: batches_served([a], newcomer) > 0, timeout=60)
    outcomes = load.stop()

    assert statuses(outcomes) == {200: len(outcomes)}
    assert gateway.alive()  # the same process all along
    assert newcomer in replica_addresses(a)


def test_a_wrapper_host_whose_link_is_cut_loses_no_request_and_rejoins(
    fresh_cluster: Cluster, digits: Digits
) -> None:
    state = fresh_cluster.state_url()
    urls = [
        fresh_cluster.start_gateway(name, gateway_toml(state))
        for name in ("gateway-a", "gateway-b")
    ]
    victim = fresh_cluster.bed.hosts["wrapper-1"]
    address = fresh_cluster.wrapper_address("wrapper-1")

    with ClosedLoop(infer_on(urls, digits[0]), clients=16) as load:
        wait_until(lambda: batches_served(urls, address) >= 20, timeout=60)
        fresh_cluster.bed.cut(victim)
        wait_until(lambda: all(address not in replica_addresses(u) for u in urls), timeout=30)
        out = time.monotonic()
        wait_until(lambda: len(load.since(out)) >= 100, timeout=60)  # the others answer
        fresh_cluster.bed.restore(victim)
        wait_until(lambda: all(address in replica_addresses(u) for u in urls), timeout=60)
        before = batches_served(urls, address)
        wait_until(lambda: batches_served(urls, address) > before, timeout=60)
    outcomes = load.stop()

    # every request had a 10 s deadline, far beyond the failover: none may be lost
    assert statuses(outcomes) == {200: len(outcomes)}, [
        (o.status, o.body) for o in outcomes if o.status != 200
    ][:5]


def _predict_and_teach(urls: list[str], digits: Digits) -> tuple[Request, Request]:
    rows, labels = digits

    def predict(client: int, number: int) -> tuple[str, dict[str, Any]]:
        row = rows[number % len(rows)]
        return f"{urls[client % len(urls)]}/apps/bandit/predict", {
            "input": row.tolist(),
            "user": f"user-{client}",
        }

    def teach(client: int, number: int) -> tuple[str, dict[str, Any]]:
        index = number % len(rows)
        return f"{urls[client % len(urls)]}/apps/bandit/feedback", {
            "input": rows[index].tolist(),
            "label": int(labels[index]),
            "user": f"user-{client}",
        }

    return predict, teach


async def _stored_feedback_ids(state_url: str, app: str) -> set[int]:
    store = RedisStateStore(state_url)
    try:
        return {int(record["id"]) for record in await store.feedback(app)}
    finally:
        await store.close()


def test_redis_away_for_ten_seconds_under_load(fresh_cluster: Cluster, digits: Digits) -> None:
    state = fresh_cluster.state_url()
    config = gateway_toml(state, extra_apps=LEARNING_APPS)
    urls = [fresh_cluster.start_gateway(name, config) for name in ("gateway-a", "gateway-b")]
    predict, teach = _predict_and_teach(urls, digits)

    with (
        ClosedLoop(predict, clients=8) as predicting,
        ClosedLoop(teach, clients=4, pause_after_error=0.1) as teaching,
    ):
        wait_until(lambda: len(teaching.outcomes) >= 40, timeout=60)
        fresh_cluster.kill_redis()
        stopped = time.monotonic()
        wait_until(lambda: any(o.status == 503 for o in teaching.since(stopped)), timeout=30)
        time.sleep(max(0.0, 10.0 - (time.monotonic() - stopped)))
        fresh_cluster.ensure_redis()
        restarted = time.monotonic()
        recovered = set(range(len(urls)))  # each gateway records feedback again
        wait_until(
            lambda: (
                {o.client % len(urls) for o in teaching.since(restarted) if o.status == 200}
                == recovered
            ),
            timeout=60,
        )
    answers = predicting.stop()
    taught = teaching.stop()

    assert statuses(answers) == {200: len(answers)}
    assert not any(answer.body["default"] for answer in answers)
    during = [o for o in taught if stopped + 0.5 < o.started < restarted - 0.5]
    assert during
    assert {o.status for o in during} == {503}
    assert {o.status for o in taught} == {200, 503}
    refused = next(o for o in during if o.status == 503)
    assert fresh_cluster.redis_host.address not in str(refused.body)
    acknowledged = {int(o.body["feedback_id"]) for o in taught if o.status == 200}
    assert acknowledged <= asyncio.run(_stored_feedback_ids(state, "bandit"))
    for url in urls:
        ready = httpx.get(f"{url}/v2/health/ready").json()
        assert ready["store"] == {"state": "up"}
        assert metric(url, "ketch_store_up") == 1


def test_two_gateways_learning_for_one_user_lose_no_update(
    fresh_cluster: Cluster, digits: Digits
) -> None:
    state = fresh_cluster.state_url()
    config = gateway_toml(state, extra_apps=LEARNING_APPS)
    urls = [fresh_cluster.start_gateway(name, config) for name in ("gateway-a", "gateway-b")]
    rows, labels = digits

    def teach(url: str) -> Request:
        def request(client: int, number: int) -> tuple[str, dict[str, Any]]:
            index = number % len(rows)
            return f"{url}/apps/personal/feedback", {
                "input": rows[index].tolist(),
                "label": int(labels[index]),
                "user": "alice",
            }

        return request

    with (
        ClosedLoop(teach(urls[0]), clients=8, total=1000) as first,
        ClosedLoop(teach(urls[1]), clients=8, total=1000) as second,
    ):
        outcomes = first.wait() + second.wait()

    assert statuses(outcomes) == {200: 2000}
    for user in ("alice", ""):
        answer = httpx.get(
            f"{urls[0]}/admin/apps/personal/state", params={"user": user}, headers=AUTH
        ).json()
        assert answer["state"]["examples"] == 2000, user


def test_a_gateway_cut_off_from_redis_catches_up_on_reconnect(
    fresh_cluster: Cluster, digits: Digits
) -> None:
    state = fresh_cluster.state_url()
    a = fresh_cluster.start_gateway("gateway-a", gateway_toml(state))
    b = fresh_cluster.start_gateway("gateway-b", gateway_toml(state))
    row = digits[0][0]
    assert served_version(b, row) == "2"

    # gateway-b is cut off while Redis restarts: its subscription is gone for good
    fresh_cluster.bed.cut(fresh_cluster.bed.hosts["gateway-b"])
    fresh_cluster.kill_redis()
    fresh_cluster.ensure_redis()

    def roll_back() -> bool:
        answer = httpx.put(f"{a}/admin/models/digits/version", json={"version": "1"}, headers=AUTH)
        assert answer.status_code in (200, 503), answer.text
        return answer.status_code == 200

    wait_until(roll_back, timeout=30, interval=0.2)  # 503 until gateway-a sees Redis again
    assert served_version(a, row) == "1"
    fresh_cluster.bed.restore(fresh_cluster.bed.hosts["gateway-b"])

    wait_until(lambda: served_version(b, row) == "1", timeout=60)
    assert metric(b, "ketch_admin_changes_applied_total", source="notification") == 0
    assert metric(b, "ketch_admin_log_position") == 1
