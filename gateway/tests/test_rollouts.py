"""Safe rollouts through a gateway in process: splits, shadows, canaries, their admin API.

Every version of the model ``digits`` is a real scikit-learn model served in process
through the sklearn plugin: v1 a weak classifier (60 training rows), v2 a good one,
v3 a wrong one (every label shifted by one), v4 the weak one slowed down by the
pacing plugin.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gateway_test_support import ADMIN_TOKEN, metric
from in_process import LocalModels, gateway_client

from ketch_gateway.rollouts.answers import decision

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def addresses(local_models: LocalModels, ensemble_models: dict[str, Path]) -> dict[str, str]:
    serve = local_models.serve
    return {
        "1": serve("digits", "sklearn", ensemble_models["weak"]),
        "2": serve("digits", "sklearn", ensemble_models["good"]),
        "3": serve("digits", "sklearn", ensemble_models["wrong"]),
        "4": serve("digits", "sklearn", ensemble_models["weak"], predict_delay=0.03),
    }


def _toml(addresses: dict[str, str], model_extra: str = "", gateway_extra: str = "") -> str:
    versions = "".join(
        f'\n  [[models.versions]]\n  version = "{v}"\n  addresses = ["{a}"]\n'
        for v, a in addresses.items()
    )
    return f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"
{gateway_extra}

[[models]]
name = "digits"
version = "1"
{model_extra}
{versions}

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 5000
default_output = -1
"""


@pytest.fixture
def gateway(
    tmp_path: Path, local_models: LocalModels, addresses: dict[str, str]
) -> Iterator[httpx.Client]:
    with gateway_client(_toml(addresses), tmp_path, local_models) as client:
        yield client


class Traffic:
    """Digits sent to the app one by one, each answered and then labelled."""

    def __init__(self, client: httpx.Client, digits: tuple[np.ndarray, np.ndarray]) -> None:
        self.client = client
        self.rows, self.labels = digits
        self.order = itertools.cycle(range(1000, len(self.labels)))
        self.sent = 0

    def predict(self, user: str | None = None, feedback: bool = True) -> Any:
        index = next(self.order)
        body: dict[str, Any] = {"input": self.rows[index].tolist()}
        if user is not None:
            body["user"] = user
        answer = self.client.post("/apps/digits/predict", json=body)
        assert answer.status_code == 200, answer.text
        self.sent += 1
        result = answer.json()
        if feedback:
            label = int(self.labels[index])
            sent = {"input": body["input"], "label": label, "query_id": result["query_id"]}
            assert self.client.post("/apps/digits/feedback", json=sent).status_code == 200
        return result["output"]

    def until_decided(self, most: int) -> dict[str, Any]:
        """Send until the rollout is over (or ``most`` queries); its status."""
        for count in range(most):
            self.predict()
            if count % 20 == 0:
                status = rollout(self.client)
                if status["rollout"]["status"] not in ("running", "paused"):
                    return status
        return rollout(self.client)


def rollout(client: httpx.Client) -> dict[str, Any]:
    found = client.get("/admin/models/digits/rollout", headers=AUTH)
    assert found.status_code == 200, found.text
    result: dict[str, Any] = found.json()
    return result


def answer_of(client: httpx.Client, version: str, row: list[float]) -> Any:
    """What ``version`` answers for ``row``, asked by name on the Open Inference Protocol."""
    spec = client.get("/v2/models/digits").json()["inputs"][0]
    body = {
        "inputs": [
            {
                "name": spec["name"],
                "shape": [1, len(row)],
                "datatype": spec["datatype"],
                "data": row,
            }
        ]
    }
    answer = client.post(f"/v2/models/digits/versions/{version}/infer", json=body).json()
    values = answer["outputs"][0]["data"]
    return values[0] if len(values) == 1 else values


def start(client: httpx.Client, **settings: Any) -> httpx.Response:
    return client.post("/admin/models/digits/rollout", json=settings, headers=AUTH)


def test_a_split_is_sticky_per_user_and_changes_live(
    gateway: httpx.Client, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    traffic = Traffic(gateway, digits)
    answer = gateway.put(
        "/admin/models/digits/split", json={"split": {"2": 0.5, "3": 0.5}}, headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["split"] == {"2": 0.5, "3": 0.5}
    rows, _ = digits
    sample = [rows[index].tolist() for index in range(1500, 1510)]
    by_version = {v: [answer_of(gateway, v, row) for row in sample] for v in ("2", "3")}
    versions = {}
    for user in (f"user-{i}" for i in range(40)):
        seen = set()
        for position, row in enumerate(sample):
            output = gateway.post("/apps/digits/predict", json={"input": row, "user": user})
            seen |= {
                v
                for v, outputs in by_version.items()
                if outputs[position] == output.json()["output"]
            }
        assert len(seen) == 1, f"{user} was answered by versions {seen}"
        versions[user] = seen.pop()
    assert set(versions.values()) == {"2", "3"}
    assert gateway.delete("/admin/models/digits/split", headers=AUTH).status_code == 200
    assert traffic.predict(feedback=False) is not None
    assert rollout(gateway)["split"] is None


def test_bad_splits_and_shadows_are_refused_naming_the_field(gateway: httpx.Client) -> None:
    cases = [
        ("/admin/models/digits/split", {"split": {"1": 0.5, "2": 0.6}}, "add up to 1"),
        ("/admin/models/digits/split", {"split": {"9": 1.0}}, "split.9: unknown version '9'"),
        ("/admin/models/digits/split", {"shares": {}}, "split"),
        ("/admin/models/digits/shadow", {"version": "1", "share": 0.5}, "version"),
        ("/admin/models/digits/shadow", {"version": "2", "share": "half"}, "shadow.share"),
    ]
    for path, body, problem in cases:
        answer = gateway.put(path, json=body, headers=AUTH)
        assert answer.status_code == 400, answer.text
        assert problem in answer.json()["error"]
    assert (
        gateway.put("/admin/models/nope/split", json={"split": {}}, headers=AUTH).status_code == 404
    )
    assert gateway.get("/admin/rollouts").status_code == 401


def test_a_shadow_answers_off_the_path_and_is_compared(
    gateway: httpx.Client, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    shadow = {"version": "3", "share": 1.0}
    assert gateway.put("/admin/models/digits/shadow", json=shadow, headers=AUTH).status_code == 200
    traffic = Traffic(gateway, digits)
    _, labels = digits
    right = sum(decision(traffic.predict()) == labels[1000 + i] for i in range(60))
    assert right > 30  # the caller is answered by version 1, never by the wrong shadow
    status = rollout(gateway)["shadow"]
    assert status["mirrored"] == 60
    assert status["compared"] + status["failed"] + status["dropped"] + status["waiting"] <= 60
    assert status["compared"] > 0
    assert status["agreement_rate"] < 0.5
    feedback = status["feedback"]
    assert feedback["examples"] > 0
    assert feedback["shadow_error_rate"] > feedback["answered_error_rate"]
    assert metric(gateway, "ketch_shadow_requests_total", outcome="compared") > 0


def test_a_full_shadow_queue_drops_and_counts(
    gateway: httpx.Client, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    shadow = {"version": "4", "share": 1.0, "queue": 1}
    assert gateway.put("/admin/models/digits/shadow", json=shadow, headers=AUTH).status_code == 200
    traffic = Traffic(gateway, digits)
    for _ in range(40):
        traffic.predict(feedback=False)
    status = rollout(gateway)["shadow"]
    assert status["dropped"] > 0
    assert metric(gateway, "ketch_shadow_requests_total", outcome="dropped") == status["dropped"]
    assert gateway.delete("/admin/models/digits/shadow", headers=AUTH).status_code == 200


def test_a_better_canary_is_promoted_step_by_step(
    gateway: httpx.Client, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    answer = start(gateway, to="2", steps=[0.1, 0.5, 1.0], min_feedback=60, step_every_s=0)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rollout"]["share"] == 0.1
    status = Traffic(gateway, digits).until_decided(3000)
    assert status["rollout"]["status"] == "promoted", status
    assert status["version"] == "2"
    assert status["split"] is None
    canary = status["rollout"]["feedback"]["canary"]
    assert canary["examples"] >= 120
    assert metric(gateway, "ketch_rollout_decisions_total", decision="promoted") == 1
    assert metric(gateway, "ketch_rollout_decisions_total", decision="step") == 1


def test_a_worse_canary_is_rolled_back_within_its_first_step(
    gateway: httpx.Client, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    answer = start(gateway, to="3", steps=[0.1, 0.5, 1.0], min_feedback=40, step_every_s=0)
    assert answer.status_code == 200, answer.text
    traffic = Traffic(gateway, digits)
    status = traffic.until_decided(3000)
    assert status["rollout"]["status"] == "rolled_back", status
    assert status["rollout"]["step"] == 0
    assert "error rate" in status["rollout"]["reason"]
    assert status["version"] == "1"
    exposed = status["rollout"]["feedback"]["canary"]["examples"]
    assert exposed <= 0.2 * traffic.sent
    assert (
        metric(
            gateway, "ketch_rollout_decisions_total", decision="rolled_back", reason="error_rate"
        )
        == 1
    )
    outputs = {traffic.predict(feedback=False) for _ in range(5)}
    assert outputs  # answered by the baseline again
    assert rollout(gateway)["split"] is None


def test_a_slow_canary_is_rolled_back_on_its_p99(
    gateway: httpx.Client, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    answer = start(
        gateway, to="4", steps=[0.5, 1.0], min_feedback=100_000, max_p99_ms=20, step_every_s=0
    )
    assert answer.status_code == 200, answer.text
    status = Traffic(gateway, digits).until_decided(1500)
    assert status["rollout"]["status"] == "rolled_back", status
    assert status["rollout"]["reason"].startswith("p99 latency")
    assert metric(gateway, "ketch_rollout_decisions_total", reason="p99") == 1


def test_admin_steering_of_a_rollout(gateway: httpx.Client) -> None:
    assert start(gateway, to="9").status_code == 400
    assert start(gateway, to="2", steps=[0.2, 1.0]).status_code == 200
    assert start(gateway, to="3").status_code == 409
    assert (
        gateway.put("/admin/models/digits/version", json={"version": "2"}, headers=AUTH).status_code
        == 409
    )
    assert (
        gateway.put(
            "/admin/models/digits/split", json={"split": {"1": 1.0}}, headers=AUTH
        ).status_code
        == 409
    )
    paused = gateway.post("/admin/models/digits/rollout/pause", headers=AUTH)
    assert paused.json()["rollout"]["status"] == "paused"
    assert gateway.post("/admin/models/digits/rollout/resume", headers=AUTH).status_code == 200
    aborted = gateway.post(
        "/admin/models/digits/rollout/abort", json={"reason": "changed my mind"}, headers=AUTH
    )
    assert aborted.status_code == 200
    assert aborted.json()["rollout"]["status"] == "aborted"
    assert aborted.json()["rollout"]["reason"] == "changed my mind"
    assert aborted.json()["version"] == "1"
    assert gateway.post("/admin/models/digits/rollout/pause", headers=AUTH).status_code == 404
    listed = gateway.get("/admin/rollouts", headers=AUTH).json()["models"]
    assert [m["model"] for m in listed] == ["digits"]


def test_a_rollout_survives_a_restart(
    tmp_path: Path,
    local_models: LocalModels,
    addresses: dict[str, str],
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    text = _toml(addresses, gateway_extra='state = "state.sqlite"')
    with gateway_client(text, tmp_path, local_models) as client:
        assert start(client, to="2", steps=[0.5, 1.0], min_feedback=10_000).status_code == 200
        traffic = Traffic(client, digits)
        for _ in range(40):
            traffic.predict()
        client.post("/admin/models/digits/rollout/pause", headers=AUTH)
        before = rollout(client)["rollout"]
    with gateway_client(text, tmp_path, local_models) as client:
        after = rollout(client)["rollout"]
        assert after["id"] == before["id"]
        assert after["status"] == "paused"
        assert after["share"] == 0.5
        assert after["feedback"] == before["feedback"]
        assert after["feedback"]["canary"]["examples"] > 0


def test_a_rollout_in_the_file_starts_with_the_gateway(
    tmp_path: Path, local_models: LocalModels, addresses: dict[str, str]
) -> None:
    extra = 'rollout = {to = "2", steps = [0.25, 1.0], min_feedback = 50}'
    with gateway_client(_toml(addresses, model_extra=extra), tmp_path, local_models) as client:
        status = rollout(client)
        assert status["rollout"]["status"] == "running"
        assert status["split"] == {"1": 0.75, "2": 0.25}
        assert metric(client, "ketch_rollout_canary_share", model="digits") == 0.25


def test_openapi_describes_the_rollout_api(gateway: httpx.Client) -> None:
    paths = gateway.get("/openapi.json").json()["paths"]
    for path in ("/admin/rollouts", "/admin/models/{model}/rollout", "/admin/models/{model}/split"):
        assert path in paths
    assert "post" in paths["/admin/models/{model}/rollout/abort"]
