"""The model abstraction layer through the gateway: batching, deadlines, shedding, replicas.

In process, but for losing a replica under load: that kills a real wrapper process.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_test_support import ADMIN_TOKEN, AUTH, SLOW_PLUGIN, digits_config, metric
from in_process import LocalModels, gateway_client

from ketch_gateway import (
    GatewayProcess,
    app_table,
    config_text,
    model_table,
    start_gateway,
    version_table,
)


@pytest.fixture(scope="module")
def batching_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    local_models: LocalModels,
    digits_model: Path,
    softmax_model: Path,
) -> Iterator[httpx.Client]:
    digits = [local_models.serve("digits", "sklearn", digits_model, max_batch=16) for _ in "ab"]
    slow = local_models.serve("slow", SLOW_PLUGIN, softmax_model, options={"predict_delay": "0.4"})
    models = [
        model_table(
            "digits",
            version_table(addresses=digits),
            batching={"policy": "aimd", "objective_ms": 50, "step": 8, "delay_ms": 5},
        ),
        model_table(
            "slow",
            version_table(addresses=[slow]),
            batching={"policy": "fixed", "size": 1, "max_queue": 3},
        ),
    ]
    apps = [
        app_table("digits", ["digits"], 10000, default_output=-1),
        app_table("slow", ["slow"], 150, default_output="late"),
    ]
    text = config_text(gateway={"admin_token": ADMIN_TOKEN}, models=models, apps=apps)
    with gateway_client(text, tmp_path_factory.mktemp("batching"), local_models) as client:
        yield client


def predict(client: httpx.Client, row: list[float], app: str = "digits") -> httpx.Response:
    return client.post(f"/apps/{app}/predict", json={"input": row})


def test_concurrent_requests_are_batched_and_answered_correctly(
    batching_gateway: httpx.Client, digits: Any, digits_classifier: Any
) -> None:
    rows = digits[0][:200]
    expected = digits_classifier.predict(rows).tolist()
    client = batching_gateway
    batches_before = metric(client, "ketch_batch_size_rows_count", model="digits")
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda row: predict(client, row.tolist()), rows))
    assert all(a.status_code == 200 for a in answers)
    assert [a.json()["output"] for a in answers] == expected
    batches = metric(client, "ketch_batch_size_rows_count", model="digits") - batches_before
    assert 0 < batches < len(rows), "32 concurrent clients should share batches"


def test_batches_never_exceed_the_wrappers_maximum(batching_gateway: httpx.Client) -> None:
    client = batching_gateway
    total = metric(client, "ketch_batch_size_rows_count", model="digits")
    within = metric(client, "ketch_batch_size_rows_bucket", model="digits", le="16.0")
    assert total > 0
    assert within == total
    models = client.get("/admin/models", headers=AUTH).json()["models"]
    digits = next(m for m in models if m["name"] == "digits")
    batching = digits["versions"][0]["batching"]
    assert batching["policy"] == "aimd"
    assert batching["max_batch"] == 16
    assert all(1 <= target <= 16 for target in batching["targets"].values())


def test_a_request_bigger_than_the_maximum_is_refused(batching_gateway: httpx.Client) -> None:
    answer = batching_gateway.post("/apps/digits/predict", json={"inputs": [[0.0] * 64] * 17})
    assert answer.status_code == 400
    assert "exceeds model 'digits''s maximum batch of 16 rows" in answer.json()["error"]


def test_requests_whose_deadline_passes_in_the_queue_are_answered_and_never_sent(
    batching_gateway: httpx.Client,
) -> None:
    client = batching_gateway
    sent_before = metric(client, "ketch_batch_size_rows_count", model="slow")
    expired_before = metric(client, "ketch_expired_requests_total", model="slow", stage="queued")
    ratios_before = metric(client, "ketch_queue_wait_objective_ratio_count", model="slow")
    early_before = metric(client, "ketch_queue_wait_objective_ratio_bucket", model="slow", le="0.5")
    request = {
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(client.post, "/v2/models/slow/infer", json=request)
        while metric(client, "ketch_batch_size_rows_count", model="slow") == sent_before:
            time.sleep(0.01)  # the first request is at the wrapper (0.4 s) and holds it
        late = list(pool.map(lambda _: predict(client, [0.0] * 64, app="slow"), range(2)))
        assert first.result().status_code == 200
    bodies = [a.json() for a in late]
    assert all(b["default"] and b["output"] == "late" for b in bodies)
    assert all("did not answer" in b["explanation"] for b in bodies)
    sent = metric(client, "ketch_batch_size_rows_count", model="slow") - sent_before
    expired = metric(client, "ketch_expired_requests_total", model="slow", stage="queued")
    assert sent == 1, "only the first request reached the wrapper"
    assert expired - expired_before == 2
    # the autoscaling signal: the first request spent none of its 30 s budget queued, the
    # two late ones all of their 150 ms
    ratios = metric(client, "ketch_queue_wait_objective_ratio_count", model="slow") - ratios_before
    early = metric(client, "ketch_queue_wait_objective_ratio_bucket", model="slow", le="0.5")
    assert ratios == 3
    assert early - early_before == 1


def test_a_full_queue_sheds_load_with_retry_after(batching_gateway: httpx.Client) -> None:
    client = batching_gateway
    request = {
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]
    }
    shed_before = metric(client, "ketch_shed_requests_total", model="slow", reason="full")

    def infer(_: int) -> httpx.Response:
        return client.post("/v2/models/slow/infer", json=request)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(infer, range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 503}
    shed = [a for a in answers if a.status_code == 503]
    assert shed, statuses
    assert all(int(a.headers["retry-after"]) >= 1 for a in shed)
    assert all("is overloaded" in a.json()["error"] for a in shed)
    shed_after = metric(client, "ketch_shed_requests_total", model="slow", reason="full")
    assert shed_after - shed_before == len(shed)


@pytest.fixture
def two_wrappers(tmp_path: Path, digits_model: Path) -> Iterator[GatewayProcess]:
    """A real gateway over two real wrappers of the digits model, batching adaptively."""
    batching = {"policy": "aimd", "objective_ms": 50, "step": 8, "delay_ms": 5}
    config = digits_config(tmp_path, digits_model, count=2, batching=batching)
    with start_gateway(config) as process:
        yield process


def test_killing_one_of_two_replicas_under_load_loses_no_request(
    two_wrappers: GatewayProcess, digits: Any, digits_classifier: Any
) -> None:
    url = two_wrappers.url
    models = httpx.get(f"{url}/admin/models", headers=AUTH).json()["models"]
    wrappers = next(m for m in models if m["name"] == "digits")["versions"][0]["wrappers"]
    assert len(wrappers) == 2
    rows = digits[0][:64]
    expected = digits_classifier.predict(rows).tolist()
    stop = threading.Event()
    failures: list[str] = []
    answered = [0]

    def client(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            index = worker
            while not stop.is_set():
                answer = http.post(
                    "/apps/digits/predict", json={"input": rows[index % 64].tolist()}
                )
                body = answer.json()
                if (
                    answer.status_code != 200
                    or body["default"]
                    or body["output"] != expected[index % 64]
                ):
                    failures.append(f"{answer.status_code} {body}")
                answered[0] += 1
                index += 7

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    os.kill(wrappers[0]["pid"], signal.SIGKILL)
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert answered[0] > 100
    assert failures == []
