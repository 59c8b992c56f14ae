"""The correction layer through the gateway (in process): ensembles, bandits, stragglers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gateway_test_support import ADMIN_TOKEN, AUTH, app_toml, redis_server, serve_ensemble
from in_process import LocalModels, gateway_client


@pytest.fixture(scope="module")
def correction_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    ensemble_models: dict[str, Path],
    local_models: LocalModels,
) -> Iterator[httpx.Client]:
    apps = "".join(
        app_toml(name, policy)
        for name, policy in [
            ("exp4", "exp4"),
            ("exp3", "exp3"),
            ("greedy", "epsilon_greedy"),
            ("ucb", "ucb1"),
            ("personal", "personalized"),
        ]
    )
    apps += app_toml("unsure", "exp4", "min_confidence = 0.999")
    models = serve_ensemble(local_models, ensemble_models)
    text = f'[gateway]\nadmin_token = "{ADMIN_TOKEN}"\n' + models + apps
    with gateway_client(text, tmp_path_factory.mktemp("correction"), local_models) as client:
        yield client


def predict(
    client: httpx.Client, app: str, row: np.ndarray, user: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": row.tolist()}
    if user:
        body["user"] = user
    answer = client.post(f"/apps/{app}/predict", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def feedback(
    client: httpx.Client, app: str, row: np.ndarray, label: int, **extra: Any
) -> dict[str, Any]:
    answer = client.post(
        f"/apps/{app}/feedback", json={"input": row.tolist(), "label": label, **extra}
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def state(client: httpx.Client, app: str, user: str = "") -> dict[str, Any]:
    answer = client.get(f"/admin/apps/{app}/state", params={"user": user}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["state"]
    return found


def test_exp4_learns_to_trust_the_good_model(correction_gateway: httpx.Client, digits: Any) -> None:
    client = correction_gateway
    rows, labels = digits
    first = predict(client, "exp4", rows[1200])
    assert first["models"] == ["good", "weak", "wrong"]
    assert 0 < first["confidence"] <= 1
    for row, label in zip(rows[1100:1130], labels[1100:1130], strict=True):
        joined = feedback(client, "exp4", row, int(label))
        assert set(joined["prediction"]) == {"good", "weak", "wrong"}
    weights = dict(
        zip(state(client, "exp4")["models"], state(client, "exp4")["log_weights"], strict=True)
    )
    assert weights["good"] == max(weights.values())
    assert weights["wrong"] == min(weights.values())
    answers = [predict(client, "exp4", row)["output"] for row in rows[1300:1340]]
    assert np.mean(np.array(answers) == labels[1300:1340]) > 0.9


@pytest.mark.parametrize("app", ["exp3", "greedy", "ucb"])
def test_bandits_pick_one_model_and_learn_from_its_query(
    correction_gateway: httpx.Client, digits: Any, app: str
) -> None:
    client = correction_gateway
    rows, labels = digits
    for row, label in zip(rows[1400:1460], labels[1400:1460], strict=True):
        answer = predict(client, app, row)
        assert len(answer["models"]) == 1
        feedback(client, app, row, int(label), query_id=answer["query_id"])
    learnt = state(client, app)
    assert learnt["models"] == ["good", "weak", "wrong"]
    if app == "exp3":
        learnt_values = learnt["log_weights"]
    else:
        learnt_values = np.asarray(learnt["sums"]) / np.maximum(learnt["counts"], 1)
    assert learnt_values[2] <= min(learnt_values[:2])
    # Before learning, a third of the picks would be the wrong model's.
    picks = [predict(client, app, row)["models"][0] for row in rows[1500:1530]]
    assert picks.count("wrong") <= 6


def test_personalized_learns_a_users_own_labels(
    correction_gateway: httpx.Client, digits: Any
) -> None:
    client = correction_gateway
    rows, labels = digits
    zeros = rows[1000:][labels[1000:] == 0]
    stream = list(zip(rows[1000:1060], labels[1000:1060], strict=True))
    for row, label in stream:
        twisted = 6 if label == 0 else int(label)  # ada files every 0 under 6
        feedback(client, "personal", row, twisted, user="ada")
    ada = [predict(client, "personal", row, user="ada")["output"] for row in zeros[-10:]]
    bob = [predict(client, "personal", row, user="bob")["output"] for row in zeros[-10:]]
    assert ada.count(6) >= 8, ada
    assert bob.count(0) >= 8, bob
    assert state(client, "personal", "ada") != state(client, "personal", "")


def test_below_the_minimum_confidence_the_default_is_answered(
    correction_gateway: httpx.Client, digits: Any
) -> None:
    answer = predict(correction_gateway, "unsure", digits[0][5])
    assert answer["output"] == -1
    assert answer["default"] is True
    assert "below the minimum confidence 0.999" in answer["explanation"]


def test_feedback_labels_are_checked(correction_gateway: httpx.Client, digits: Any) -> None:
    client = correction_gateway
    for label, message in [(10, "from 0 to 9"), ("seven", "class index"), (1.5, "class index")]:
        answer = client.post(
            "/apps/exp4/feedback", json={"input": digits[0][0].tolist(), "label": label}
        )
        assert answer.status_code == 400
        assert message in answer.json()["error"]


def test_stragglers_are_left_out_at_the_objective(
    tmp_path: Path, ensemble_models: dict[str, Path], local_models: LocalModels, digits: Any
) -> None:
    text = serve_ensemble(local_models, ensemble_models, slow={"weak": 0.4})
    text += app_toml("fast", "exp4").replace(
        "latency_objective_ms = 5000", "latency_objective_ms = 150"
    )
    text += app_toml("patient", "exp4", "straggler_mitigation = false").replace(
        "latency_objective_ms = 5000", "latency_objective_ms = 150"
    )
    with gateway_client(text, tmp_path, local_models) as client:
        fast = predict(client, "fast", digits[0][9])
        patient = predict(client, "patient", digits[0][9])
    assert fast["models"] == ["good", "wrong"]
    assert "combined without weak (did not answer in time)" in fast["explanation"]
    assert fast["output"] == digits[1][9]
    assert patient["models"] == ["good", "weak", "wrong"]


def test_feedback_reaches_models_that_learn_online(
    tmp_path: Path, softmax_model: Path, local_models: LocalModels, digits: Any
) -> None:
    learner = local_models.serve("learner", "ketch_conformance.reference:plugin", softmax_model)
    text = f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"

[[models]]
name = "learner"
  [[models.versions]]
  version = "1"
  addresses = ["{learner}"]

[[apps]]
name = "teach"
models = ["learner"]
latency_objective_ms = 5000
policy = "exp4"
classes = 10
forward_feedback = true
"""
    row = digits[0][17].astype(np.float32)
    request = {
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row.tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    with gateway_client(text, tmp_path, local_models) as client:
        infer = "/v2/models/learner/infer"
        before = client.post(infer, json=request).json()["outputs"][0]["data"][3]
        for _ in range(5):
            feedback(client, "teach", row, 3)
        after = client.post(infer, json=request).json()["outputs"][0]["data"][3]
    assert after > before


def test_policy_state_survives_a_restart_in_redis(
    tmp_path: Path, ensemble_models: dict[str, Path], local_models: LocalModels, digits: Any
) -> None:
    rows, labels = digits
    with redis_server(tmp_path) as url:
        text = (
            f'[gateway]\nadmin_token = "{ADMIN_TOKEN}"\nstate = "{url}"\n'
            + serve_ensemble(local_models, ensemble_models)
            + app_toml("exp4", "exp4")
        )
        with gateway_client(text, tmp_path, local_models) as first:
            for row, label in zip(rows[1600:1610], labels[1600:1610], strict=True):
                feedback(first, "exp4", row, int(label), user="ada")
            learnt = state(first, "exp4")
            personal = state(first, "exp4", "ada")
        with gateway_client(text, tmp_path, local_models) as second:
            assert state(second, "exp4") == learnt
            assert state(second, "exp4", "ada") == personal
    assert learnt["log_weights"] != [0.0, 0.0, 0.0]
