"""The admin API: authentication, every change, and persistence across a restart.

In process over models served in process, but for what needs wrapper processes: the
managed replicas the gateway starts, and a restart of the gateway itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_test_support import ADMIN_TOKEN, AUTH, digits_config, gateway_env
from in_process import LocalModels, gateway_client

from ketch import start_wrapper
from ketch_gateway import GatewayProcess, start_gateway

LOCAL_DIGITS = f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"

[[models]]
name = "digits"
  [[models.versions]]
  version = "1"
  addresses = ["{{address}}"]

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 5000
"""


@pytest.fixture(scope="module")
def local_admin(
    tmp_path_factory: pytest.TempPathFactory, local_models: LocalModels, digits_model: Path
) -> Iterator[httpx.Client]:
    """A gateway in process whose digits model is served in process."""
    address = local_models.serve("digits", "sklearn", digits_model)
    text = LOCAL_DIGITS.format(address=address)
    with gateway_client(text, tmp_path_factory.mktemp("admin"), local_models) as client:
        yield client


@pytest.fixture
def admin(local_admin: httpx.Client) -> httpx.Client:
    """The in-process gateway, with the admin token."""
    local_admin.headers.update(AUTH)
    return local_admin


@pytest.fixture
def anonymous(local_admin: httpx.Client) -> Iterator[httpx.Client]:
    """The in-process gateway, without the admin token."""
    local_admin.headers.pop("authorization", None)
    yield local_admin
    local_admin.headers.update(AUTH)


@pytest.fixture(scope="module")
def admin_config(tmp_path_factory: pytest.TempPathFactory, digits_model: Path) -> Path:
    return digits_config(tmp_path_factory.mktemp("admin"), digits_model)


@pytest.fixture(scope="module")
def admin_gateway(admin_config: Path) -> Iterator[GatewayProcess]:
    """A real gateway that starts and supervises its digits wrapper."""
    with start_gateway(admin_config, env=gateway_env()) as process:
        yield process


@pytest.fixture
def managed(admin_gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin_gateway.url, timeout=60, headers=AUTH) as client:
        yield client


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def version_of(admin: httpx.Client, model: str, version: str) -> dict[str, Any]:
    models = ok(admin.get("/admin/models"))["models"]
    entry = next(m for m in models if m["name"] == model)
    found: dict[str, Any] = next(v for v in entry["versions"] if v["version"] == version)
    return found


def test_authentication(anonymous: httpx.Client) -> None:
    missing = anonymous.get("/admin/models")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "missing Authorization" in missing.json()["error"]
    wrong = anonymous.get("/admin/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert wrong.json()["error"] == "wrong admin token"
    basic = anonymous.get("/admin/models", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


def test_versions_rollout_and_rollback(
    admin: httpx.Client, local_models: LocalModels, digits_model: Path, digits: Any
) -> None:
    second = local_models.serve("digits", "sklearn", digits_model, version="2")
    added = admin.post(
        "/admin/models/digits/versions", json={"version": "2", "addresses": [second]}
    )
    assert ok(added)["version"] == "2"
    assert ok(admin.put("/admin/models/digits/version", json={"version": "2"}))["version"] == "2"
    rows = digits[0][:1]
    request = {
        "inputs": [
            {"name": "input", "shape": [1, 64], "datatype": "FP64", "data": rows.ravel().tolist()}
        ]
    }
    assert ok(admin.post("/v2/models/digits/infer", json=request))["model_version"] == "2"
    assert ok(admin.put("/admin/models/digits/version", json={"version": "1"}))["version"] == "1"
    assert ok(admin.post("/v2/models/digits/infer", json=request))["model_version"] == "1"
    missing = admin.put("/admin/models/digits/version", json={"version": "7"})
    assert missing.status_code == 404
    assert "no version '7'" in missing.json()["error"]
    twice = admin.post(
        "/admin/models/digits/versions", json={"version": "2", "addresses": [second]}
    )
    assert twice.status_code == 409


def test_scaling_managed_replicas(managed: httpx.Client) -> None:
    admin = managed
    scaled = ok(admin.put("/admin/models/digits/versions/1/replicas", json={"count": 2}))
    assert scaled["managed"] == 2
    assert len(scaled["wrappers"]) == 2
    address = scaled["wrappers"][1]["address"]
    removed = ok(admin.delete(f"/admin/models/digits/versions/1/replicas/{address}"))
    assert removed["managed"] == 1
    assert address not in [r["address"] for r in removed["replicas"]]
    bad = admin.put("/admin/models/digits/versions/1/replicas", json={"count": -1})
    assert bad.status_code == 400
    assert "count: expected a whole number" in bad.json()["error"]


def test_external_replicas(managed: httpx.Client, digits_model: Path) -> None:
    admin = managed
    with start_wrapper("sklearn", digits_model, name="digits") as wrapper:
        added = ok(
            admin.post(
                "/admin/models/digits/versions/1/replicas", json={"address": wrapper.address}
            )
        )
        replica = next(r for r in added["replicas"] if r["address"] == wrapper.address)
        assert replica == {"address": wrapper.address, "healthy": True, "managed": False}
        again = admin.post(
            "/admin/models/digits/versions/1/replicas", json={"address": wrapper.address}
        )
        assert again.status_code == 409
        removed = ok(admin.delete(f"/admin/models/digits/versions/1/replicas/{wrapper.address}"))
        assert wrapper.address not in removed["addresses"]
    unknown = admin.delete("/admin/models/digits/versions/1/replicas/127.0.0.1:1")
    assert unknown.status_code == 404


def test_apps_and_links(admin: httpx.Client, digits: Any) -> None:
    created = admin.post(
        "/admin/apps",
        json={
            "name": "second",
            "models": ["digits"],
            "latency_objective_ms": 5000,
            "default_output": 0,
        },
    )
    assert ok(created)["models"] == ["digits"]
    answer = ok(admin.post("/apps/second/predict", json={"input": digits[0][0].tolist()}))
    assert answer["default"] is False
    assert ok(admin.delete("/admin/apps/second/links/digits"))["models"] == []
    assert ok(admin.post("/admin/apps/second/links", json={"model": "digits"}))["models"] == [
        "digits"
    ]
    linked = admin.post("/admin/apps/second/links", json={"model": "digits"})
    assert linked.status_code == 409
    unknown = admin.post("/admin/apps/second/links", json={"model": "nope"})
    assert unknown.status_code == 404
    bad_app = admin.post(
        "/admin/apps", json={"name": "third", "models": ["nope"], "latency_objective_ms": 5}
    )
    assert bad_app.status_code == 400
    assert bad_app.json()["error"] == "models: unknown model 'nope' (models: digits)"
    busy = admin.delete("/admin/models/digits")
    assert busy.status_code == 409
    assert "linked to app(s) digits, second" in busy.json()["error"]


def test_an_apps_settings_change_in_place(admin: httpx.Client) -> None:
    settings = {"name": "third", "models": ["digits"], "latency_objective_ms": 5000}
    ok(admin.post("/admin/apps", json=settings))
    changed = ok(
        admin.put(
            "/admin/apps/third",
            json={"models": ["digits"], "latency_objective_ms": 800, "default_output": 0},
        )
    )
    assert changed["latency_objective_ms"] == 800
    assert changed["default_output"] == 0
    listed = {app["name"]: app for app in ok(admin.get("/admin/apps"))["apps"]}
    assert listed["third"]["latency_objective_ms"] == 800
    renamed = admin.put("/admin/apps/third", json={**settings, "name": "fourth"})
    assert renamed.status_code == 400
    assert renamed.json()["error"] == "name: 'fourth' is not the app's name 'third'"
    assert admin.put("/admin/apps/nope", json=settings).status_code == 404
    ok(admin.delete("/admin/apps/third"))


def test_bad_admin_bodies(admin: httpx.Client) -> None:
    missing = admin.post("/admin/models", json={"name": "x"})
    assert missing.status_code == 400
    assert missing.json()["error"] == "versions: missing"
    wrong = admin.post(
        "/admin/models", json={"name": "x", "versions": [{"version": "1", "count": "many"}]}
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == (
        "versions[0].plugin: missing (a launched wrapper needs a plugin and a path)"
    )
    not_json = admin.post(
        "/admin/models", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400


def test_changes_survive_a_restart(
    admin_gateway: GatewayProcess, admin_config: Path, digits_model: Path
) -> None:
    with httpx.Client(base_url=admin_gateway.url, headers=AUTH, timeout=60) as admin:
        second = {"version": "2", "plugin": "sklearn", "path": str(digits_model), "count": 1}
        ok(admin.post("/admin/models/digits/versions", json=second))
        ok(admin.put("/admin/models/digits/version", json={"version": "2"}))
        before_models = ok(admin.get("/admin/models"))
        before_apps = ok(admin.get("/admin/apps"))
    assert admin_gateway.stop() == 0
    with (
        start_gateway(admin_config, env=gateway_env()) as restarted,
        httpx.Client(base_url=restarted.url, headers=AUTH, timeout=60) as admin,
    ):
        after_models = ok(admin.get("/admin/models"))
        after_apps = ok(admin.get("/admin/apps"))
    assert after_apps == before_apps
    assert [m["version"] for m in after_models["models"]] == ["2"]
    summary = [(v["version"], v["managed"]) for v in after_models["models"][0]["versions"]]
    assert summary == [(v["version"], v["managed"]) for v in before_models["models"][0]["versions"]]


def test_admin_disabled_without_a_token(tmp_path: Path, local_models: LocalModels) -> None:
    with gateway_client("[gateway]\n", tmp_path, local_models) as client:
        answer = client.get("/admin/models", headers=AUTH)
        assert answer.status_code == 403
        assert "the admin API is disabled" in answer.json()["error"]
