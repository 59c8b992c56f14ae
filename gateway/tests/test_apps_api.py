"""The Apps API against a real gateway and real wrappers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from gateway_test_support import sentences


def test_predict_one_row(http: httpx.Client, digits: Any, digits_classifier: Any) -> None:
    rows, _ = digits
    answer = http.post("/apps/digits/predict", json={"input": rows[1500].tolist()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["default"] is False
    assert len(body["query_id"]) == 32
    assert "explanation" not in body
    assert body["output"]["predict"] == int(digits_classifier.predict(rows[1500:1501])[0])
    assert len(body["output"]["predict_proba"]) == 10


def test_predict_several_rows(http: httpx.Client, digits: Any, digits_classifier: Any) -> None:
    rows, _ = digits
    batch = rows[1000:1040]
    answer = http.post("/apps/digits/predict", json={"inputs": batch.tolist(), "user": "ada"})
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["outputs"]
    assert [o["predict"] for o in outputs] == digits_classifier.predict(batch).tolist()


def test_text_rows_come_back_as_text(http: httpx.Client, topics_classifier: Any) -> None:
    texts, _ = sentences(5, seed=9)
    answer = http.post("/apps/topics/predict", json={"inputs": texts})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == topics_classifier.predict(texts).tolist()


def test_latency_objective_answers_the_default_with_an_explanation(http: httpx.Client) -> None:
    answer = http.post("/apps/slow-with-default/predict", json={"input": [0.0] * 64})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["default"] is True
    assert body["output"] == "too slow"
    assert "latency objective of 150 ms" in body["explanation"]


def test_no_default_output_is_a_503(http: httpx.Client) -> None:
    answer = http.post("/apps/slow-without-default/predict", json={"input": [0.0] * 64})
    assert answer.status_code == 503
    assert "has no default output" in answer.json()["error"]
    assert answer.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b"", 400, "the body is empty"),
        (b'{"input": [1, 2]}', 400, "input: 2 values do not match shape [1, 64]"),
        (b'{"input": [1, 2], "inputs": [[1, 2]]}', 400, "not both"),
        (b'{"inputs": []}', 400, "non-empty list of rows"),
        (b'{"input": ' + b"[" + b",".join([b'"x"'] * 64) + b"]}", 400, "FP64 elements are numbers"),
        (b'{"input": [0], "colour": "red"}', 400, "unknown field(s) colour"),
        (b'{"input": [0], "user": 7}', 400, "user: expected a non-empty string"),
    ],
)
def test_bad_requests_name_the_problem(
    http: httpx.Client, body: bytes, status: int, message: str
) -> None:
    answer = http.post(
        "/apps/digits/predict", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status
    assert message in answer.json()["error"]


def test_shape_errors_say_what_the_model_takes(http: httpx.Client) -> None:
    answer = http.post("/apps/digits/predict", json={"input": [1.0, 2.0]})
    assert "the model takes FP64 rows of shape [64] for 'input'" in answer.json()["error"]


def test_unknown_app(http: httpx.Client) -> None:
    answer = http.post("/apps/nope/predict", json={"input": [0]})
    assert answer.status_code == 404
    assert answer.json()["error"] == (
        "unknown app 'nope' (apps: digits, topics, slow-with-default, slow-without-default)"
    )


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    answer = http.post("/apps/digits/predict", json={"inputs": [[0.0] * 64] * 1000})
    assert answer.status_code == 413
    assert "the limit is 200000" in answer.json()["error"]

    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": ['
        for _ in range(1000):
            yield b"[" + b",".join([b"0.0"] * 64) + b"],"
        yield b"[0]]}"

    streamed = http.post(
        "/apps/digits/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert "over the limit of 200000 bytes" in streamed.json()["error"]


def test_feedback_is_validated_and_recorded(http: httpx.Client, digits: Any) -> None:
    rows, labels = digits
    answer = http.post(
        "/apps/digits/feedback",
        json={"input": rows[7].tolist(), "label": int(labels[7]), "user": "ada"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["recorded"] is True
    missing = http.post("/apps/digits/feedback", json={"input": rows[7].tolist()})
    assert missing.status_code == 400
    assert missing.json()["error"] == "label: missing"
    wrong_shape = http.post("/apps/digits/feedback", json={"input": [1, 2, 3], "label": 1})
    assert wrong_shape.status_code == 400
    assert "3 values do not match" in wrong_shape.json()["error"]


def test_the_gateway_keeps_serving_after_bad_input(http: httpx.Client, digits: Any) -> None:
    for _ in range(3):
        http.post(
            "/apps/digits/predict",
            content=b"\x00\xff garbage",
            headers={"content-type": "application/json"},
        )
    rows, _ = digits
    answer = http.post("/apps/digits/predict", json={"input": rows[0].tolist()})
    assert answer.status_code == 200
    assert np.isscalar(answer.json()["output"]["predict"])
