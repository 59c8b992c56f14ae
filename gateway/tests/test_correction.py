"""The correction layer in a real gateway: ensembles, bandits, personalization, stragglers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io
from gateway_test_support import ADMIN_TOKEN, AUTH, gateway_env, redis_server, write_config
from sklearn.linear_model import LogisticRegression

from ketch import EXTRA_VARIABLE
from ketch_conformance import pacing
from ketch_gateway import GatewayProcess, start_gateway


@pytest.fixture(scope="module")
def ensemble_models(
    tmp_path_factory: pytest.TempPathFactory, digits: tuple[np.ndarray, np.ndarray]
) -> dict[str, Path]:
    """A good model, a weak one (60 rows) and a wrong one (every label shifted by one)."""
    rows, labels = digits
    folder = tmp_path_factory.mktemp("ensemble")
    fits = {
        "good": LogisticRegression(max_iter=2000).fit(rows[:1000], labels[:1000]),
        "weak": LogisticRegression(max_iter=2000).fit(rows[:60], labels[:60]),
        "wrong": LogisticRegression(max_iter=2000).fit(rows[:1000], (labels[:1000] + 1) % 10),
    }
    paths = {}
    for name, model in fits.items():
        paths[name] = folder / f"{name}.skops"
        skops.io.dump(model, paths[name])
    return paths


def models_toml(paths: dict[str, Path]) -> str:
    text = ""
    for name, path in paths.items():
        text += f"""
[[models]]
name = "{name}"
  [[models.versions]]
  version = "1"
  plugin = "sklearn"
  path = "{path}"
  options = {{ method = "predict_proba" }}
"""
    return text


def app_toml(name: str, policy: str, extra: str = "") -> str:
    return f"""
[[apps]]
name = "{name}"
models = ["good", "weak", "wrong"]
latency_objective_ms = 5000
policy = "{policy}"
classes = 10
default_output = -1
{extra}
"""


@pytest.fixture(scope="module")
def correction_gateway(
    tmp_path_factory: pytest.TempPathFactory, ensemble_models: dict[str, Path]
) -> Iterator[GatewayProcess]:
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
    config = write_config(
        tmp_path_factory.mktemp("correction"),
        f'[gateway]\nadmin_token = "{ADMIN_TOKEN}"\n' + models_toml(ensemble_models) + apps,
    )
    with start_gateway(config, env=gateway_env()) as process:
        yield process


def predict(url: str, app: str, row: np.ndarray, user: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": row.tolist()}
    if user:
        body["user"] = user
    answer = httpx.post(f"{url}/apps/{app}/predict", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def feedback(url: str, app: str, row: np.ndarray, label: int, **extra: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"{url}/apps/{app}/feedback",
        json={"input": row.tolist(), "label": label, **extra},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def state(url: str, app: str, user: str = "") -> dict[str, Any]:
    answer = httpx.get(f"{url}/admin/apps/{app}/state", params={"user": user}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["state"]
    return found


def test_exp4_learns_to_trust_the_good_model(
    correction_gateway: GatewayProcess, digits: Any
) -> None:
    url = correction_gateway.url
    rows, labels = digits
    first = predict(url, "exp4", rows[1200])
    assert first["models"] == ["good", "weak", "wrong"]
    assert 0 < first["confidence"] <= 1
    for row, label in zip(rows[1100:1130], labels[1100:1130], strict=True):
        joined = feedback(url, "exp4", row, int(label))
        assert set(joined["prediction"]) == {"good", "weak", "wrong"}
    weights = dict(
        zip(state(url, "exp4")["models"], state(url, "exp4")["log_weights"], strict=True)
    )
    assert weights["good"] == max(weights.values())
    assert weights["wrong"] == min(weights.values())
    answers = [predict(url, "exp4", row)["output"] for row in rows[1300:1340]]
    assert np.mean(np.array(answers) == labels[1300:1340]) > 0.9


@pytest.mark.parametrize("app", ["exp3", "greedy", "ucb"])
def test_bandits_pick_one_model_and_learn_from_its_query(
    correction_gateway: GatewayProcess, digits: Any, app: str
) -> None:
    url = correction_gateway.url
    rows, labels = digits
    for row, label in zip(rows[1400:1460], labels[1400:1460], strict=True):
        answer = predict(url, app, row)
        assert len(answer["models"]) == 1
        feedback(url, app, row, int(label), query_id=answer["query_id"])
    learnt = state(url, app)
    assert learnt["models"] == ["good", "weak", "wrong"]
    if app == "exp3":
        learnt_values = learnt["log_weights"]
    else:
        learnt_values = np.asarray(learnt["sums"]) / np.maximum(learnt["counts"], 1)
    assert learnt_values[2] <= min(learnt_values[:2])
    # Before learning, a third of the picks would be the wrong model's.
    picks = [predict(url, app, row)["models"][0] for row in rows[1500:1530]]
    assert picks.count("wrong") <= 6


def test_personalized_learns_a_users_own_labels(
    correction_gateway: GatewayProcess, digits: Any
) -> None:
    url = correction_gateway.url
    rows, labels = digits
    zeros = rows[1000:][labels[1000:] == 0]
    stream = list(zip(rows[1000:1060], labels[1000:1060], strict=True))
    for row, label in stream:
        twisted = 6 if label == 0 else int(label)  # ada files every 0 under 6
        feedback(url, "personal", row, twisted, user="ada")
    ada = [predict(url, "personal", row, user="ada")["output"] for row in zeros[-10:]]
    bob = [predict(url, "personal", row, user="bob")["output"] for row in zeros[-10:]]
    assert ada.count(6) >= 8, ada
    assert bob.count(0) >= 8, bob
    assert state(url, "personal", "ada") != state(url, "personal", "")


def test_below_the_minimum_confidence_the_default_is_answered(
    correction_gateway: GatewayProcess, digits: Any
) -> None:
    answer = predict(correction_gateway.url, "unsure", digits[0][5])
    assert answer["output"] == -1
    assert answer["default"] is True
    assert "below the minimum confidence 0.999" in answer["explanation"]


def test_feedback_labels_are_checked(correction_gateway: GatewayProcess, digits: Any) -> None:
    url = correction_gateway.url
    for label, message in [(10, "from 0 to 9"), ("seven", "class index"), (1.5, "class index")]:
        answer = httpx.post(
            f"{url}/apps/exp4/feedback", json={"input": digits[0][0].tolist(), "label": label}
        )
        assert answer.status_code == 400
        assert message in answer.json()["error"]


def test_stragglers_are_left_out_at_the_objective(
    tmp_path: Path, ensemble_models: dict[str, Path], digits: Any
) -> None:
    text = models_toml(ensemble_models)
    text += app_toml("fast", "exp4").replace(
        "latency_objective_ms = 5000", "latency_objective_ms = 150"
    )
    text += app_toml("patient", "exp4", "straggler_mitigation = false").replace(
        "latency_objective_ms = 5000", "latency_objective_ms = 150"
    )
    config = write_config(tmp_path, text)
    slow_weak = {EXTRA_VARIABLE: pacing.REFERENCE, pacing.PREDICT_DELAY_VARIABLE: "weak=0.4"}
    with start_gateway(config, env={**gateway_env(), **slow_weak}) as process:
        fast = predict(process.url, "fast", digits[0][9])
        patient = predict(process.url, "patient", digits[0][9])
    assert fast["models"] == ["good", "wrong"]
    assert "combined without weak (did not answer in time)" in fast["explanation"]
    assert fast["output"] == digits[1][9]
    assert patient["models"] == ["good", "weak", "wrong"]


def test_feedback_reaches_models_that_learn_online(
    tmp_path: Path, softmax_model: Path, digits: Any
) -> None:
    config = write_config(
        tmp_path,
        f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"

[[models]]
name = "learner"
  [[models.versions]]
  version = "1"
  plugin = "ketch_conformance.reference:plugin"
  path = "{softmax_model}"

[[apps]]
name = "teach"
models = ["learner"]
latency_objective_ms = 5000
policy = "exp4"
classes = 10
forward_feedback = true
""",
    )
    row = digits[0][17].astype(np.float32)
    request = {
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row.tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    with start_gateway(config, env=gateway_env()) as process:
        infer = f"{process.url}/v2/models/learner/infer"
        before = httpx.post(infer, json=request).json()["outputs"][0]["data"][3]
        for _ in range(5):
            feedback(process.url, "teach", row, 3)
        after = httpx.post(infer, json=request).json()["outputs"][0]["data"][3]
    assert after > before


def test_policy_state_survives_a_restart_in_redis(
    tmp_path: Path, ensemble_models: dict[str, Path], digits: Any
) -> None:
    rows, labels = digits
    with redis_server(tmp_path) as url:
        config = write_config(
            tmp_path,
            f'[gateway]\nadmin_token = "{ADMIN_TOKEN}"\nstate = "{url}"\n'
            + models_toml(ensemble_models)
            + app_toml("exp4", "exp4"),
        )
        with start_gateway(config) as first:
            for row, label in zip(rows[1600:1610], labels[1600:1610], strict=True):
                feedback(first.url, "exp4", row, int(label), user="ada")
            learnt = state(first.url, "exp4")
            personal = state(first.url, "exp4", "ada")
        with start_gateway(config) as second:
            assert state(second.url, "exp4") == learnt
            assert state(second.url, "exp4", "ada") == personal
    assert learnt["log_weights"] != [0.0, 0.0, 0.0]
