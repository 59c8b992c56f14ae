"""The public API against cross-site writes and strangers: content types, CORS, API keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_test_support import digits_at
from in_process import LocalModels, gateway_client

JSON = {"content-type": "application/json"}
ORIGIN = "https://app.example"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_apps_bodies_must_say_they_are_json(
    http: httpx.Client, digits: Any, content_type: str | None
) -> None:
    body = httpx.Request("POST", "/", json={"input": digits[0][0].tolist(), "label": 0}).content
    headers = {"content-type": content_type} if content_type else {}
    answer = http.post("/apps/digits/feedback", content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"].startswith("Content-Type: ")
    assert "send application/json" in answer.json()["error"]
    predict = http.post("/apps/digits/predict", content=body, headers=headers)
    assert predict.status_code == 415


def test_json_with_a_charset_is_json(http: httpx.Client, digits: Any) -> None:
    answer = http.post(
        "/apps/digits/predict",
        content=httpx.Request("POST", "/", json={"input": digits[0][0].tolist()}).content,
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert answer.status_code == 200, answer.text


def test_infer_takes_json_binary_or_untyped_bodies_but_not_forms(http: httpx.Client) -> None:
    document = httpx.Request(
        "POST",
        "/",
        json={
            "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP64", "data": [0] * 64}]
        },
    ).content
    for content_type in ("application/json", "application/octet-stream", None):
        headers = {"content-type": content_type} if content_type else {}
        answer = http.post("/v2/models/digits/infer", content=document, headers=headers)
        assert answer.status_code == 200, (content_type, answer.text)
    refused = http.post(
        "/v2/models/digits/infer", content=document, headers={"content-type": "text/plain"}
    )
    assert refused.status_code == 415
    assert "application/json or application/octet-stream" in refused.json()["error"]


def test_admin_bodies_must_be_json(http: httpx.Client) -> None:
    from gateway_test_support import AUTH

    answer = http.post("/admin/apps", content=b"{}", headers={**AUTH, "content-type": "text/plain"})
    assert answer.status_code == 415


def test_cors_is_off_by_default(http: httpx.Client, digits: Any) -> None:
    preflight = http.options(
        "/apps/digits/feedback",
        headers={"origin": ORIGIN, "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    answer = http.post(
        "/apps/digits/predict",
        json={"input": digits[0][0].tolist()},
        headers={"origin": ORIGIN},
    )
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


KEYED_APPS = """
[[apps]]
name = "keyed"
models = ["digits"]
latency_objective_ms = 5000
api_keys = ["first-key", "second-key"]

[[apps]]
name = "open"
models = ["digits"]
latency_objective_ms = 5000
"""


@pytest.fixture(scope="module")
def keyed(
    tmp_path_factory: pytest.TempPathFactory, local_models: LocalModels, digits_model: Path
) -> Iterator[httpx.Client]:
    address = local_models.serve("digits", "sklearn", digits_model)
    cors = f'[gateway.cors]\nallow_origins = ["{ORIGIN}"]'
    text = digits_at(address, gateway=cors, apps=KEYED_APPS)
    with gateway_client(text, tmp_path_factory.mktemp("keyed"), local_models) as client:
        yield client


def test_apps_with_api_keys_need_one(keyed: httpx.Client, digits: Any) -> None:
    row = {"input": digits[0][0].tolist()}
    missing = keyed.post("/apps/keyed/predict", json=row)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "needs an API key" in missing.json()["error"]
    wrong = keyed.post("/apps/keyed/predict", json=row, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert wrong.json()["error"] == "wrong API key for app 'keyed'"
    for key in ("first-key", "second-key"):
        right = keyed.post(
            "/apps/keyed/predict", json=row, headers={"authorization": f"Bearer {key}"}
        )
        assert right.status_code == 200, right.text
    feedback = keyed.post("/apps/keyed/feedback", json={**row, "label": 0})
    assert feedback.status_code == 401
    assert keyed.post("/apps/open/predict", json=row).status_code == 200


def test_cors_answers_the_configured_origins_only(keyed: httpx.Client) -> None:
    asked = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    preflight = keyed.options("/apps/open/predict", headers={"origin": ORIGIN, **asked})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    stranger = keyed.options(
        "/apps/open/predict", headers={"origin": "https://evil.example", **asked}
    )
    assert stranger.status_code == 400
    assert "access-control-allow-origin" not in stranger.headers
