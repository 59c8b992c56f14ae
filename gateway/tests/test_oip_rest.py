"""The Open Inference Protocol over REST: tritonclient's HTTP client, JSON and binary tensors."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from gateway_test_support import sentences

from ketch_gateway import GatewayProcess

httpclient = pytest.importorskip("tritonclient.http")


@pytest.fixture
def triton(serving: GatewayProcess) -> Iterator[Any]:
    client = httpclient.InferenceServerClient(urlparse(serving.url).netloc)
    yield client
    client.close()


def test_health_and_metadata(triton: Any, http: httpx.Client) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("digits")
    assert triton.is_model_ready("digits", "1")
    metadata = triton.get_model_metadata("digits")
    assert metadata["name"] == "digits"
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "scikit-learn"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 64]}]
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]
    server = triton.get_server_metadata()
    assert server["name"] == "ketch"
    assert "binary_tensor_data" in server["extensions"]
    assert http.get("/v2/models/digits/versions/1").json() == metadata


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_the_estimator(
    triton: Any, digits: Any, digits_classifier: Any, binary: bool
) -> None:
    rows = digits[0][1200:1264]
    tensor = httpclient.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=binary),
        httpclient.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = triton.infer("digits", [tensor], outputs=outputs, request_id="r-7")
    np.testing.assert_array_equal(result.as_numpy("predict"), digits_classifier.predict(rows))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), digits_classifier.predict_proba(rows)
    )
    response = result.get_response()
    assert response["id"] == "r-7"
    assert response["model_name"] == "digits"
    assert response["model_version"] == "1"


def test_default_outputs_are_all_outputs(triton: Any, digits: Any) -> None:
    rows = digits[0][:3]
    tensor = httpclient.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    result = triton.infer("digits", [tensor], model_version="1")
    assert result.as_numpy("predict").shape == (3,)
    assert result.as_numpy("predict_proba").shape == (3, 10)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_bytes_tensors(triton: Any, topics_classifier: Any, binary: bool) -> None:
    texts, _ = sentences(6, seed=4)
    rows = np.array([t.encode() for t in texts], dtype=object)
    tensor = httpclient.InferInput("input", [len(rows)], "BYTES")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    output = httpclient.InferRequestedOutput("predict", binary_data=binary)
    result = triton.infer("topics", [tensor], outputs=[output])
    got = [
        value.decode() if isinstance(value, bytes) else value
        for value in result.as_numpy("predict")
    ]
    assert got == topics_classifier.predict(texts).tolist()


def test_tritonclient_sees_clear_errors(triton: Any) -> None:
    from tritonclient.utils import InferenceServerException

    wrong = httpclient.InferInput("input", [2, 64], "FP32")
    wrong.set_data_from_numpy(np.zeros((2, 64), np.float32))
    with pytest.raises(InferenceServerException, match="expected datatype FP64, got FP32"):
        triton.infer("digits", [wrong])
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        triton.get_model_metadata("nope")


def infer_json(http: httpx.Client, document: Any, model: str = "digits") -> httpx.Response:
    return http.post(f"/v2/models/{model}/infer", content=json.dumps(document))


def tensor(
    data: Any, shape: list[int], datatype: str = "FP64", name: str = "input"
) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


@pytest.mark.parametrize(
    ("document", "status", "message"),
    [
        ({"inputs": [tensor([0.0] * 64, [1, 63])]}, 400, "64 values do not match shape [1, 63]"),
        ({"inputs": [tensor([0.0] * 63, [1, 63])]}, 400, "expected shape [-1, 64], got [1, 63]"),
        (
            {"inputs": [tensor([0] * 64, [1, 64], "INT64")]},
            400,
            "expected datatype FP64, got INT64",
        ),
        ({"inputs": [tensor([0.0] * 64, [1, 64], "FLOAT")]}, 400, "unknown datatype 'FLOAT'"),
        ({"inputs": [tensor([0.0] * 64, [1, 64], name="x")]}, 400, "missing 'input'; unknown 'x'"),
        ({"inputs": []}, 400, "inputs: expected a non-empty array"),
        (
            {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP64"}]},
            400,
            "inputs[0].data: missing",
        ),
        (
            {"inputs": [tensor([0.0] * 64, [1, 64])], "outputs": [{"name": "nope"}]},
            400,
            "unknown output(s) 'nope'",
        ),
        (
            {"inputs": [tensor([0.0] * 64, [1, -64])]},
            400,
            "inputs[0].shape: expected an array of sizes",
        ),
        ({"inputs": "x"}, 400, "inputs: expected a non-empty array"),
    ],
)
def test_bad_inference_requests(
    http: httpx.Client, document: Any, status: int, message: str
) -> None:
    answer = infer_json(http, document)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_unknown_model_and_version_are_404(http: httpx.Client) -> None:
    document = {"inputs": [tensor([0.0] * 64, [1, 64])]}
    assert infer_json(http, document, model="nope").status_code == 404
    answer = http.post("/v2/models/digits/versions/9/infer", content=json.dumps(document))
    assert answer.status_code == 404
    assert answer.json()["error"] == "model 'digits' has no version '9' (versions: 1)"


def test_binary_body_errors(http: httpx.Client) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 64],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 512},
                }
            ]
        }
    ).encode()
    short = http.post(
        "/v2/models/digits/infer",
        content=header + b"\x00" * 100,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert short.status_code == 400
    assert "goes past the end of the binary data (100 bytes left)" in short.json()["error"]
    extra = http.post(
        "/v2/models/digits/infer",
        content=header + b"\x00" * 520,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert extra.status_code == 400
    assert "8 bytes of binary data follow the last binary input" in extra.json()["error"]
    liar = http.post(
        "/v2/models/digits/infer",
        content=header,
        headers={"Inference-Header-Content-Length": "99999"},
    )
    assert liar.status_code == 400
    assert "Inference-Header-Content-Length: 99999" in liar.json()["error"]


def test_binary_response_layout(http: httpx.Client, digits: Any) -> None:
    rows = digits[0][:2]
    document = {
        "inputs": [tensor(rows.ravel().tolist(), [2, 64])],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    answer = infer_json(http, document)
    length = int(answer.headers["inference-header-content-length"])
    header = json.loads(answer.content[:length])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 16
    assert list(struct.unpack("<2q", answer.content[length:])) == [0, 1]


def test_the_model_timeout_is_a_504(http: httpx.Client) -> None:
    document = {"inputs": [tensor([0.0] * 64, [1, 64], "FP32")]}
    answer = infer_json(http, document, model="slow")
    assert answer.status_code == 504, answer.text


def test_unknown_route_and_method(http: httpx.Client) -> None:
    missing = http.get("/v3/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "no such endpoint: GET /v3/nothing"
    wrong = http.get("/v2/models/digits/infer")
    assert wrong.status_code == 405
    assert "GET is not allowed" in wrong.json()["error"]
