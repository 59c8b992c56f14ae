"""Prediction caching through the gateway (in process): exact, coalesced, approximate, expiry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gateway_test_support import ADMIN_TOKEN, AUTH, SLOW_PLUGIN, metric, sentences
from in_process import LocalModels, gateway_client

from ketch_gateway import app_table, config_text, model_table, version_table


@pytest.fixture(scope="module")
def caching_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    local_models: LocalModels,
    digits_model: Path,
    topics_model: Path,
    softmax_model: Path,
) -> Iterator[httpx.Client]:
    serve = local_models.serve
    digits_1 = serve("digits", "sklearn", digits_model, version="1")
    digits_2 = serve("digits", "sklearn", digits_model, version="2")
    similar = serve("similar", "sklearn", digits_model)
    topics = serve("topics", "sklearn", topics_model)
    slow = serve("slow", SLOW_PLUGIN, softmax_model, options={"predict_delay": "0.3"})
    learner = serve("learner", "ketch_conformance.reference:plugin", softmax_model)
    models = [
        model_table(
            "digits",
            version_table(addresses=[digits_1]),
            version_table(addresses=[digits_2], version="2"),
            version="1",
            cache={"exact": True},
        ),
        model_table(
            "similar",
            version_table(addresses=[similar]),
            cache={"approximate": True, "threshold": 0.97},
        ),
        model_table(
            "topics",
            version_table(addresses=[topics]),
            cache={"approximate": True, "text_threshold": 0.99},
        ),
        model_table(
            "slow",
            version_table(addresses=[slow]),
            cache={"ttl_s": 0.5},
            batching={"policy": "fixed", "size": 1},
        ),
        model_table("learner", version_table(addresses=[learner]), cache={"exact": True}),
    ]
    apps = [app_table(model["name"], [model["name"]], 10000) for model in models]
    text = config_text(gateway={"admin_token": ADMIN_TOKEN}, models=models, apps=apps)
    with gateway_client(text, tmp_path_factory.mktemp("caching"), local_models) as client:
        yield client


def ask(client: httpx.Client, app: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(f"/apps/{app}/predict", json={**body, "cache_report": True})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_an_exact_repeat_is_answered_from_the_cache(
    caching_gateway: httpx.Client, digits: Any
) -> None:
    client = caching_gateway
    row = digits[0][321].tolist()
    first = ask(client, "digits", {"input": row})
    batches = metric(client, "ketch_batch_size_rows_count", model="digits")
    second = ask(client, "digits", {"input": row})
    assert (first["cache"], second["cache"]) == ("miss", "exact")
    assert first["output"] == second["output"]
    assert metric(client, "ketch_batch_size_rows_count", model="digits") == batches
    assert metric(client, "ketch_cache_lookups_total", model="digits", outcome="exact") >= 1


def test_rows_of_a_batch_are_cached_one_by_one(caching_gateway: httpx.Client, digits: Any) -> None:
    client = caching_gateway
    rows = digits[0][400:404].tolist()
    ask(client, "digits", {"input": rows[1]})
    answer = ask(client, "digits", {"inputs": [rows[0], rows[1], rows[2], rows[1]]})
    assert answer["cache"] == ["miss", "exact", "miss", "exact"]


def test_another_version_never_serves_this_versions_answers(
    caching_gateway: httpx.Client, digits: Any
) -> None:
    client = caching_gateway
    row = digits[0][500].tolist()
    assert ask(client, "digits", {"input": row})["cache"] == "miss"
    assert ask(client, "digits", {"input": row})["cache"] == "exact"
    switched = client.put("/admin/models/digits/version", json={"version": "2"}, headers=AUTH)
    assert switched.status_code == 200
    assert ask(client, "digits", {"input": row})["cache"] == "miss"
    client.put("/admin/models/digits/version", json={"version": "1"}, headers=AUTH)
    assert ask(client, "digits", {"input": row})["cache"] == "exact"


def test_identical_rows_in_flight_share_one_call(caching_gateway: httpx.Client) -> None:
    client = caching_gateway
    row = [0.25] * 64
    batches = metric(client, "ketch_batch_size_rows_count", model="slow")
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda _: ask(client, "slow", {"input": row}), range(5)))
    assert sorted(a["cache"] for a in answers) == ["coalesced"] * 4 + ["miss"]
    assert len({str(a["output"]) for a in answers}) == 1
    assert metric(client, "ketch_batch_size_rows_count", model="slow") - batches == 1


def test_answers_expire_after_the_time_to_live(caching_gateway: httpx.Client) -> None:
    client = caching_gateway
    row = [0.75] * 64
    first = ask(client, "slow", {"input": row})
    second = ask(client, "slow", {"input": row})
    time.sleep(0.6)
    third = ask(client, "slow", {"input": row})
    assert [first["cache"], second["cache"], third["cache"]] == ["miss", "exact", "miss"], (
        first,
        second,
        third,
    )


def test_a_model_that_learns_online_is_not_cached_without_a_time_to_live(
    caching_gateway: httpx.Client,
) -> None:
    client = caching_gateway
    row = [0.5] * 64
    assert ask(client, "learner", {"input": row})["cache"] == "uncached"
    assert ask(client, "learner", {"input": row})["cache"] == "uncached"


def test_similar_digits_reuse_an_answer(
    caching_gateway: httpx.Client, digits: Any, digits_classifier: Any
) -> None:
    client = caching_gateway
    rows = digits[0][1000:1100]
    for start in range(0, 100, 25):
        ask(client, "similar", {"inputs": rows[start : start + 25].tolist()})
    rng = np.random.default_rng(1)
    noisy = np.clip(rows + rng.normal(0, 0.01, rows.shape), 0, 1)
    answer = ask(client, "similar", {"inputs": noisy.tolist()})
    hits = [i for i, source in enumerate(answer["cache"]) if source == "approximate"]
    assert len(hits) > 50
    expected = digits_classifier.predict(noisy)
    agree = np.mean([answer["outputs"][i] == expected[i] for i in hits])
    assert agree > 0.95


def test_similar_texts_reuse_an_answer(caching_gateway: httpx.Client) -> None:
    client = caching_gateway
    texts, _ = sentences(3, seed=11)
    ask(client, "topics", {"inputs": texts})
    shuffled = [" ".join(reversed(text.split())).upper() for text in texts]
    answer = ask(client, "topics", {"inputs": shuffled})
    assert answer["cache"] == ["approximate"] * 3


def test_feedback_finds_the_prediction_through_the_cache(
    caching_gateway: httpx.Client, digits: Any
) -> None:
    client = caching_gateway
    row = digits[0][700].tolist()
    predicted = ask(client, "digits", {"input": row})["output"]
    feedback = client.post("/apps/digits/feedback", json={"input": row, "label": 3}).json()
    assert feedback["recorded"] is True
    assert feedback["prediction"] == predicted
    unseen = client.post(
        "/apps/digits/feedback", json={"input": digits[0][701].tolist(), "label": 1}
    ).json()
    assert unseen["prediction"] is None


def test_the_inference_endpoint_reports_cache_use_when_asked(
    caching_gateway: httpx.Client, digits: Any
) -> None:
    client = caching_gateway
    row = digits[0][800]
    request = {
        "parameters": {"ketch_cache": True},
        "inputs": [
            {"name": "input", "shape": [2, 64], "datatype": "FP64", "data": [row.tolist()] * 2}
        ],
    }
    answer = client.post("/v2/models/digits/infer", json=request).json()
    assert answer["parameters"] == {"ketch_cache": "miss,coalesced"}
    again = client.post("/v2/models/digits/infer", json=request).json()
    assert again["parameters"] == {"ketch_cache": "exact,exact"}
    plain = {key: value for key, value in request.items() if key != "parameters"}
    assert "parameters" not in client.post("/v2/models/digits/infer", json=plain).json()


def test_cache_metrics(caching_gateway: httpx.Client, digits: Any) -> None:
    client = caching_gateway
    ask(client, "digits", {"input": digits[0][900].tolist()})
    assert metric(client, "ketch_cache_lookups_total", model="digits", outcome="miss") > 0
    assert metric(client, "ketch_cache_bytes", model="digits", version="1") > 0
    models = client.get("/admin/models", headers=AUTH).json()["models"]
    digits = next(m for m in models if m["name"] == "digits")
    assert digits["versions"][0]["batching"]["cache"]["entries"] > 0
