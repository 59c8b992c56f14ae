"""What the gateway answers when it, or a wrapper, fails: no internals, a request id in the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_test_plugins import FAILING_PLUGIN, SECRET
from in_process import LocalModels, gateway_client
from sdk_test_plugins import WINDOW_PLUGIN


@pytest.fixture(scope="module")
def failing(
    tmp_path_factory: pytest.TempPathFactory, local_models: LocalModels, softmax_model: Path
) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("failing")
    window = folder / "steps.window"
    window.write_text(json.dumps({"min": 2, "max": 8}))
    failing = local_models.serve("failing", FAILING_PLUGIN, softmax_model)
    steps = local_models.serve("steps", WINDOW_PLUGIN, window)
    text = f"""
[[models]]
name = "failing"
  [[models.versions]]
  version = "1"
  addresses = ["{failing}"]

[[models]]
name = "steps"
  [[models.versions]]
  version = "1"
  addresses = ["{steps}"]

[[apps]]
name = "failing"
models = ["failing"]
latency_objective_ms = 5000
"""
    with gateway_client(text, folder, local_models) as client:
        yield client


def request_id_logged(caplog: pytest.LogCaptureFixture, request_id: str) -> str:
    lines = [record.getMessage() for record in caplog.records if request_id in record.getMessage()]
    assert lines, f"request id {request_id} is not in the log"
    return lines[0]


def test_a_wrapper_failure_is_a_502_whose_detail_is_only_in_the_log(
    failing: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    document = {
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]
    }
    with caplog.at_level(logging.WARNING, logger="ketch_gateway"):
        answer = failing.post(
            "/v2/models/failing/infer", json=document, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 502, answer.text
    body = answer.json()
    assert SECRET not in answer.text
    assert "ZeroDivisionError" not in answer.text
    assert "model 'failing' version '1' failed in its wrapper (INTERNAL)" in body["error"]
    assert answer.headers["x-request-id"] == body["request_id"]
    assert SECRET in request_id_logged(caplog, body["request_id"])


def test_an_internal_error_says_only_that_and_a_request_id(
    failing: httpx.Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = failing.app.state.gateway  # type: ignore[attr-defined]

    def broken() -> bool:
        raise KeyError(SECRET)

    monkeypatch.setattr(gateway, "ready", broken)
    with caplog.at_level(logging.ERROR, logger="ketch_gateway"):
        answer = failing.get("/v2/health/ready")
    assert answer.status_code == 500
    body = answer.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"] == (
        f"internal error; the gateway's log has it under request id {body['request_id']}"
    )
    assert SECRET not in answer.text
    assert "KeyError" not in answer.text
    request_id_logged(caplog, body["request_id"])
    assert any(SECRET in str(record.exc_info) for record in caplog.records if record.exc_info)


def test_model_metadata_publishes_the_wrappers_dimension_ranges(failing: httpx.Client) -> None:
    metadata = failing.get("/v2/models/steps").json()
    ranges = {"dim_1_min": 2, "dim_1_max": 8, "dim_1_name": "steps"}
    assert metadata["inputs"] == [
        {"name": "series", "datatype": "FP32", "shape": [-1, -1], "parameters": ranges},
        {"name": "weights", "datatype": "FP32", "shape": [-1, -1], "parameters": ranges},
    ]
    assert metadata["outputs"] == [{"name": "total", "datatype": "FP32", "shape": [-1]}]
