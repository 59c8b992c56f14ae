"""``/dashboard``: who may read it, and that its document agrees with ``/metrics``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from gateway_test_support import ADMIN_TOKEN, AUTH, app_toml, serve_ensemble
from in_process import LocalModels, gateway_client
from prometheus_client.parser import text_string_to_metric_families

from ketch_gateway.metrics import Metrics
from ketch_gateway.observability.dashboard import policy_summary
from ketch_gateway.observability.history import MetricsHistory, bucket_quantile
from ketch_gateway.observability.recent_errors import RecentErrors


def counted(exposition: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``, in an exposition."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(scope="module")
def digits_address(local_models: LocalModels, digits_model: Path) -> str:
    return local_models.serve("digits", "sklearn", digits_model)


def digits_toml(address: str, gateway: str = "") -> str:
    return f"""
[gateway]
{gateway}

[[models]]
name = "digits"
  [models.cache]
  exact = true
  [[models.versions]]
  version = "1"
  addresses = ["{address}"]

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 5000
"""


@pytest.mark.parametrize(
    ("settings", "headers", "status", "message"),
    [
        ("", {}, 403, "the dashboard's data needs the admin token, and none is configured"),
        (f'admin_token = "{ADMIN_TOKEN}"', {}, 401, "missing Authorization: Bearer"),
        (
            f'admin_token = "{ADMIN_TOKEN}"',
            {"Authorization": "Bearer wrong"},
            403,
            "wrong admin token",
        ),
        (f'admin_token = "{ADMIN_TOKEN}"', AUTH, 200, None),
        ('dashboard = "open"', {}, 200, None),
        (f'admin_token = "{ADMIN_TOKEN}"\ndashboard = "off"', AUTH, 404, "the dashboard is off"),
    ],
)
def test_who_may_read_the_dashboard(  # noqa: PLR0917 (fixtures and parameters)
    tmp_path: Path,
    local_models: LocalModels,
    digits_address: str,
    settings: str,
    headers: dict[str, str],
    status: int,
    message: str | None,
) -> None:
    with gateway_client(digits_toml(digits_address, settings), tmp_path, local_models) as http:
        data = http.get("/dashboard/data", headers=headers)
        assert data.status_code == status
        if message is not None:
            assert message in data.json()["error"]
        page = http.get("/dashboard")
        if "off" in settings:
            assert page.status_code == 404
            return
        # the page itself holds no data: it is served to anyone, and asks for the token
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script src="/dashboard/dashboard.js">' in page.text
        script = http.get("/dashboard/dashboard.js")
        assert script.status_code == 200
        assert "/dashboard/data" in script.text
        assert "http" not in script.text.replace("https://", "").replace("http://www.w3.org", "")
        assert http.get("/dashboard/dashboard.css").status_code == 200
        paths = http.get("/openapi.json").json()["paths"]
        assert {"/dashboard", "/dashboard/data"} <= set(paths)


def test_guessing_the_token_on_the_dashboard_is_throttled_like_the_admin_api(
    tmp_path: Path, local_models: LocalModels, digits_address: str
) -> None:
    toml = digits_toml(digits_address, f'admin_token = "{ADMIN_TOKEN}"')
    toml += "\n[admin]\nauth_failures = 2\nauth_window_s = 600\n"
    with gateway_client(toml, tmp_path, local_models) as http:
        wrong = {"Authorization": "Bearer wrong"}
        assert [http.get("/dashboard/data", headers=wrong).status_code for _ in range(2)] == [
            403,
            403,
        ]
        held = http.get("/dashboard/data", headers=AUTH)
        assert held.status_code == 429
        assert "too many failed authentications" in held.json()["error"]
        assert int(held.headers["Retry-After"]) > 0
        assert http.get("/admin/models", headers=AUTH).status_code == 429, "one budget for both"


def test_the_document_agrees_with_the_metrics(
    tmp_path: Path,
    local_models: LocalModels,
    ensemble_models: dict[str, Path],
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    text = (
        f'[gateway]\nadmin_token = "{ADMIN_TOKEN}"\n'
        + serve_ensemble(local_models, ensemble_models)
        + app_toml("ensemble", "exp3")
        + app_toml("bandit", "ucb1")
    )
    rows, labels = digits
    with gateway_client(text, tmp_path, local_models) as http:
        for index in range(12):
            row = rows[index].tolist()
            assert http.post("/apps/ensemble/predict", json={"input": row}).status_code == 200
            assert http.post("/apps/bandit/predict", json={"input": row}).status_code == 200
            feedback = {"input": row, "label": int(labels[index])}
            assert http.post("/apps/ensemble/feedback", json=feedback).status_code == 200
            assert http.post("/apps/bandit/feedback", json=feedback).status_code == 200
        assert http.post("/apps/ensemble/predict", json={"input": [1, 2]}).status_code == 400
        assert http.post("/apps/nowhere/predict", json={"input": [1]}).status_code == 404
        logging.getLogger("ketch_gateway.serving.replicas").warning("replica x is unreachable")
        document = http.get("/dashboard/data", headers=AUTH).json()
        exposition = http.get("/metrics").text

    apps = {app["name"]: app for app in document["apps"]}
    for name in ("ensemble", "bandit"):
        assert apps[name]["requests"] == counted(
            exposition, "ketch_requests_total", surface="app", target=name
        )
        assert apps[name]["errors"] == counted(
            exposition, "ketch_request_errors_total", surface="app", target=name
        )
        assert apps[name]["default_outputs"] == counted(
            exposition, "ketch_app_default_outputs_total", app=name
        )
    assert apps["ensemble"]["requests"] == 13
    assert apps["ensemble"]["errors"] == 1
    ensemble = apps["ensemble"]["learnt"]
    assert ensemble["kind"] == "weights"
    assert set(ensemble["models"]) == {"good", "weak", "wrong"}
    assert sum(ensemble["models"].values()) == pytest.approx(1.0)
    assert ensemble["models"]["good"] > ensemble["models"]["wrong"]
    bandit = apps["bandit"]["learnt"]
    assert bandit["kind"] == "bandit"
    # feedback without a query id rewards every model for the row (the shared state)
    assert [entry["plays"] for entry in bandit["models"].values()] == [12, 12, 12]
    assert bandit["models"]["good"]["mean_reward"] > bandit["models"]["wrong"]["mean_reward"]
    assert document["gateway"]["requests"]["app"] == counted(
        exposition, "ketch_requests_total", surface="app"
    )
    models = {model["name"]: model for model in document["models"]}
    assert set(models) == {"good", "weak", "wrong"}
    for name, model in models.items():
        [version] = model["versions"]
        assert version["queue_depth"] == counted(exposition, "ketch_queue_depth", model=name)
        [replica] = version["replicas"]
        assert replica["healthy"] is True
        assert counted(exposition, "ketch_replica_healthy", model=name) == 1
        assert replica["target_rows"] == counted(exposition, "ketch_batch_target_rows", model=name)
    errors = document["errors"]
    assert errors[0]["kind"] == "log"
    assert errors[0]["message"] == "replica x is unreachable"
    answered = [error for error in errors if error["kind"] == "answer"]
    assert [error["status"] for error in answered] == [404, 400]
    assert answered[0]["where"] == "POST /apps/nowhere/predict"


def test_cache_hit_rates_match_the_lookups(
    tmp_path: Path,
    local_models: LocalModels,
    digits_address: str,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    text = digits_toml(digits_address, 'dashboard = "open"')
    rows = digits[0]
    with gateway_client(text, tmp_path, local_models) as http:
        for index in (0, 1, 2, 0, 1, 0):
            body = {"input": rows[index].tolist()}
            assert http.post("/apps/digits/predict", json=body).status_code == 200
        document = http.get("/dashboard/data").json()
        exposition = http.get("/metrics").text
    [version] = document["models"][0]["versions"]
    lookups = version["cache"]["lookups"]
    for outcome, count in lookups.items():
        assert count == counted(exposition, "ketch_cache_lookups_total", outcome=outcome)
    assert lookups["exact"] == 3
    assert lookups["miss"] == 3
    assert version["cache"]["hit_rate"] == pytest.approx(0.5)


def test_bucket_quantiles_interpolate_as_prometheus_does() -> None:
    buckets = [(0.1, 10.0), (0.2, 30.0), (0.4, 40.0), (float("inf"), 40.0)]
    assert bucket_quantile(0.25, buckets) == pytest.approx(0.1)
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.15)
    assert bucket_quantile(0.99, buckets) == pytest.approx(0.2 + 0.2 * 9.6 / 10)
    assert bucket_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert bucket_quantile(0.5, [(0.1, 0.0), (float("inf"), 5.0)]) == pytest.approx(0.1)


def test_history_points_are_rates_and_percentiles_per_interval() -> None:
    metrics = Metrics()
    history = MetricsHistory(metrics, interval=5.0)
    history.sample(at=100.0)
    instruments = metrics.instruments("app", "digits")
    for seconds in [0.003] * 8 + [0.3] * 2:
        instruments.latency.observe(seconds)
        metrics.status_counter("app", "digits", 200).inc()
    metrics.status_counter("app", "digits", 503).inc()
    metrics.errors.labels("app", "digits", "503").inc()
    history.sample(at=105.0)
    [series] = history.series()
    assert (series["surface"], series["target"]) == ("app", "digits")
    [point] = series["points"]
    assert point["rate"] == pytest.approx(11 / 5)
    assert point["errors"] == pytest.approx(1 / 5)
    assert 2.5 <= point["p50_ms"] <= 5.0
    assert 250.0 <= point["p99_ms"] <= 500.0


def test_recent_errors_keep_the_newest_first_and_bounded() -> None:
    errors = RecentErrors(capacity=3)
    for status in (400, 404, 503, 504):
        errors.answered("POST", "/apps/a/predict", status, "x" * 1000)
    listing = errors.listing()
    assert [entry["status"] for entry in listing] == [504, 503, 404]
    assert len(listing[0]["message"]) == 500


def test_policy_summaries() -> None:
    assert policy_summary("exp3", None) is None
    weights = policy_summary("exp4", {"models": ["a", "b"], "log_weights": [0.0, np.log(3.0)]})
    assert weights is not None
    assert weights["models"] == pytest.approx({"a": 0.25, "b": 0.75})
    bandit = policy_summary("ucb1", {"models": ["a", "b"], "counts": [4, 0], "sums": [3, 0]})
    assert bandit == {
        "kind": "bandit",
        "models": {"a": {"plays": 4, "mean_reward": 0.75}, "b": {"plays": 0, "mean_reward": None}},
    }
    split = policy_summary(
        "personalized",
        {"models": ["a", "b"], "weights": [[0.5, 0.0, 0.2, 0.0, 0.0], [0.0, 0.5, 0.0, 0.4, 0.0]]},
    )
    assert split is not None
    assert split["models"] == pytest.approx({"a": 0.5, "b": 0.3})
