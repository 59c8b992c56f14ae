"""113 hand-made malformed requests: each is a 4xx that names the field, never a 500.

The table covers the Open Inference Protocol's JSON and binary-tensor bodies, the
Apps API's predict and feedback bodies, and a few routing mistakes. Issue 15 found
7 of its 113 such cases answered 500 (a zero-size tensor with a huge dimension,
lists nested hundreds deep); this table keeps every one of them a client error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

DIGITS = "/v2/models/digits/infer"
TOPICS = "/v2/models/topics/infer"
PREDICT = "/apps/digits/predict"
FEEDBACK = "/apps/digits/feedback"
ROW = [0.0] * 64
HUGE = 4611686018427387904
DEEP = 490


def nested(depth: int, leaf: str = "1") -> str:
    """A JSON list nested ``depth`` deep around ``leaf``."""
    return "[" * depth + leaf + "]" * depth


@dataclass(frozen=True)
class Case:
    """A request, the client error it gets, and text its message must hold."""

    name: str
    path: str
    body: bytes
    status: int = 400
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


def tensor(
    data: Any = ROW, shape: Any = (1, 64), datatype: Any = "FP64", name: Any = "input"
) -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": data}


def infer(*tensors: Any, **extra: Any) -> bytes:
    return json.dumps({"inputs": list(tensors), **extra}).encode()


def raw_infer(*tensors: str) -> bytes:
    """An infer document with its tensors as given (for hand-written JSON fragments)."""
    return ('{"inputs": [' + ", ".join(tensors) + "]}").encode()


def without(key: str) -> dict[str, Any]:
    document = tensor()
    del document[key]
    return document


def binary(
    header: Any, payload: bytes, length: str | None = None, path: str = DIGITS
) -> tuple[str, bytes, dict[str, str]]:
    document = header if isinstance(header, bytes) else json.dumps(header).encode()
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": length if length is not None else str(len(document)),
    }
    return path, document + payload, headers


def binary_tensor(size: Any, shape: Any = (1, 64), datatype: str = "FP64") -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": list(shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": size},
            }
        ]
    }


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _oip_json_cases() -> list[Case]:
    deep = nested(DEEP)
    return [
        Case("empty body", DIGITS, b"", message="not valid JSON"),
        Case("not json", DIGITS, b"{nope", message="not valid JSON"),
        Case("array document", DIGITS, b"[1, 2]", message="the body: expected an object"),
        Case("string document", DIGITS, b'"x"', message="the body: expected an object"),
        Case("null document", DIGITS, b"null", message="the body: expected an object"),
        Case("no inputs", DIGITS, b"{}", message="inputs:"),
        Case("inputs null", DIGITS, b'{"inputs": null}', message="inputs:"),
        Case("inputs object", DIGITS, b'{"inputs": {}}', message="inputs:"),
        Case("inputs empty", DIGITS, b'{"inputs": []}', message="inputs:"),
        Case("input a number", DIGITS, b'{"inputs": [1]}', message="inputs[0]:"),
        Case("input null", DIGITS, b'{"inputs": [null]}', message="inputs[0]:"),
        Case("name missing", DIGITS, infer(without("name")), message="inputs[0].name"),
        Case("name a number", DIGITS, infer(tensor(name=5)), message="inputs[0].name"),
        Case("name empty", DIGITS, infer(tensor(name="")), message="inputs[0].name"),
        Case("datatype missing", DIGITS, infer(without("datatype")), message="inputs[0].datatype"),
        Case("datatype a number", DIGITS, infer(tensor(datatype=5)), message="inputs[0].datatype"),
        Case("datatype unknown", DIGITS, infer(tensor(datatype="FLOAT")), message="'FLOAT'"),
        Case("shape missing", DIGITS, infer(without("shape")), message="inputs[0].shape"),
        Case("shape a string", DIGITS, infer(tensor(shape="x")), message="inputs[0].shape"),
        Case("shape of strings", DIGITS, infer(tensor(shape=[1, "64"])), message="inputs[0].shape"),
        Case("shape negative", DIGITS, infer(tensor(shape=[1, -64])), message="inputs[0].shape"),
        Case("shape fractional", DIGITS, infer(tensor(shape=[1.5, 64])), message="inputs[0].shape"),
        Case("shape boolean", DIGITS, infer(tensor(shape=[True, 64])), message="inputs[0].shape"),
        Case(
            "zero-size tensor with a huge dimension",
            DIGITS,
            infer(tensor([], [0, HUGE])),
            message="inputs[0].shape",
        ),
        Case(
            "two huge dimensions",
            DIGITS,
            infer(tensor([], [HUGE, HUGE])),
            message="inputs[0].shape",
        ),
        Case(
            "a dimension past 64 bits",
            DIGITS,
            raw_infer(
                '{"name": "input", "shape": [0, 36893488147419103232], '
                '"datatype": "FP64", "data": []}'
            ),
            message="",
        ),
        Case(
            "huge shape with a few values",
            DIGITS,
            infer(tensor(ROW, [1, 2**40])),
            message="inputs[0]",
        ),
        Case("65 dimensions", DIGITS, infer(tensor([0.0], [1] * 65)), message="inputs[0].shape"),
        Case("data missing", DIGITS, infer(without("data")), message="inputs[0].data"),
        Case("data a string", DIGITS, infer(tensor("abc")), message="inputs[0].data"),
        Case("data an object", DIGITS, infer(tensor({})), message="inputs[0].data"),
        Case(
            "data nested 490 deep",
            DIGITS,
            raw_infer(f'{{"name": "input", "shape": [1, 64], "datatype": "FP64", "data": {deep}}}'),
            message="inputs[0].data",
        ),
        Case(
            "bytes data nested 490 deep",
            TOPICS,
            raw_infer(
                f'{{"name": "input", "shape": [1], "datatype": "BYTES", '
                f'"data": {nested(DEEP, chr(34) + "x" + chr(34))}}}'
            ),
            message="inputs[0].data",
        ),
        Case(
            "data nested 5000 deep",
            DIGITS,
            raw_infer(
                f'{{"name": "input", "shape": [1, 64], "datatype": "FP64", "data": {nested(5000)}}}'
            ),
        ),
        Case("strings for FP64", DIGITS, infer(tensor(["x"] * 64)), message="inputs[0].data"),
        Case("booleans for FP64", DIGITS, infer(tensor([True] * 64)), message="inputs[0].data"),
        Case("nulls for FP64", DIGITS, infer(tensor([None] * 64)), message="inputs[0].data"),
        Case(
            "objects inside the data",
            DIGITS,
            infer(tensor([{}] * 64)),
            message="inputs[0].data",
        ),
        Case(
            "a number past FP64",
            DIGITS,
            raw_infer('{"name": "input", "shape": [1, 1], "datatype": "FP64", "data": [1e400]}'),
        ),
        Case(
            "fraction for INT64",
            DIGITS,
            infer(tensor([1.5], [1, 1], "INT64")),
            message="inputs[0].data",
        ),
        Case(
            "too big for INT8",
            DIGITS,
            infer(tensor([1000], [1, 1], "INT8")),
            message="inputs[0].data",
        ),
        Case(
            "negative UINT8",
            DIGITS,
            infer(tensor([-1], [1, 1], "UINT8")),
            message="inputs[0].data",
        ),
        Case(
            "an integer past 64 bits",
            DIGITS,
            raw_infer(
                '{"name": "input", "shape": [1, 1], "datatype": "INT64", '
                '"data": [1180591620717411303424]}'
            ),
        ),
        Case(
            "ragged data",
            DIGITS,
            infer(tensor([[1.0, 2.0], [3.0]], [1, 3])),
            message="'input'",
        ),
        Case("too few values", DIGITS, infer(tensor([0.0] * 63)), message="inputs[0].data"),
        Case(
            "an input sent twice",
            DIGITS,
            infer(tensor(), tensor()),
            message="inputs[1].name",
        ),
        Case(
            "parameters a string",
            DIGITS,
            infer(tensor(), parameters="x"),
            message="parameters",
        ),
        Case(
            "binary_data_output not a boolean",
            DIGITS,
            infer(tensor(), parameters={"binary_data_output": "yes"}),
            message="parameters.binary_data_output",
        ),
        Case("id a number", DIGITS, infer(tensor(), id=5), message="id:"),
        Case("outputs a string", DIGITS, infer(tensor(), outputs="x"), message="outputs"),
        Case("output a number", DIGITS, infer(tensor(), outputs=[5]), message="outputs[0]"),
        Case(
            "output name a number",
            DIGITS,
            infer(tensor(), outputs=[{"name": 5}]),
            message="outputs[0].name",
        ),
        Case(
            "unknown output",
            DIGITS,
            infer(tensor(), outputs=[{"name": "nope"}]),
            message="'nope'",
        ),
        Case(
            "binary_data not a boolean",
            DIGITS,
            infer(tensor(), outputs=[{"name": "predict", "parameters": {"binary_data": "x"}}]),
            message="outputs[0].parameters.binary_data",
        ),
        Case(
            "classification asked",
            DIGITS,
            infer(tensor(), outputs=[{"name": "predict", "parameters": {"classification": 2}}]),
            message="outputs[0].parameters.classification",
        ),
        Case(
            "BOOL for an FP64 model",
            DIGITS,
            infer(tensor([True] * 64, datatype="BOOL")),
            message="expected datatype FP64",
        ),
        Case(
            "BYTES for an FP64 model",
            DIGITS,
            infer(tensor(["a"] * 64, datatype="BYTES")),
            message="expected datatype FP64",
        ),
        Case(
            "numbers for a BYTES model",
            TOPICS,
            infer(tensor([1], [1], "BYTES")),
            message="inputs[0].data",
        ),
        Case(
            "a text model given a matrix",
            TOPICS,
            infer(tensor(["a"], [1, 1], "BYTES")),
            message="shape",
        ),
        Case(
            "binary_data_size without binary data",
            DIGITS,
            infer(
                {
                    "name": "input",
                    "shape": [1, 64],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 512},
                }
            ),
            message="inputs[0]",
        ),
        Case(
            "FP16 for an FP64 model",
            DIGITS,
            infer(tensor(ROW, datatype="FP16")),
            message="expected datatype FP64",
        ),
        Case(
            "unknown version",
            "/v2/models/digits/versions/9/infer",
            infer(tensor()),
            status=404,
            message="no version '9'",
        ),
        Case("unknown model", "/v2/models/nope/infer", infer(tensor()), status=404),
        Case(
            "a tensor's parameters a list",
            DIGITS,
            infer({**tensor(), "parameters": [1]}),
            message="inputs[0].parameters",
        ),
    ]


def _binary_cases() -> list[Case]:
    good = binary_tensor(512)
    cases = [
        ("header length not a number", binary(good, b"\0" * 512, "abc"), "Inference-Header"),
        ("header length zero", binary(good, b"\0" * 512, "0"), "Inference-Header"),
        ("header length past the body", binary(good, b"", "99999"), "Inference-Header"),
        ("header length negative", binary(good, b"\0" * 512, "-5"), "Inference-Header"),
        ("size a string", binary(binary_tensor("x"), b"\0" * 512), "binary_data_size"),
        ("size negative", binary(binary_tensor(-1), b"\0" * 512), "binary_data_size"),
        ("size a boolean", binary(binary_tensor(True), b"\0" * 512), "binary_data_size"),
        ("size past the end", binary(binary_tensor(1024), b"\0" * 512), "past the end"),
        ("bytes after the last input", binary(good, b"\0" * 520), "follow the last"),
        ("size not a multiple", binary(binary_tensor(7, (1, 1)), b"\0" * 7), "inputs[0]"),
        ("size against the shape", binary(binary_tensor(8, (1, 64)), b"\0" * 8), "inputs[0]"),
        (
            "zero-size tensor with a huge dimension",
            binary(binary_tensor(0, (0, HUGE)), b""),
            "inputs[0].shape",
        ),
        (
            "a bad BYTES length prefix",
            binary(binary_tensor(8, (1,), "BYTES"), b"\xff\xff\xff\x7fabcd", path=TOPICS),
            "inputs[0]",
        ),
        ("header not JSON", binary(b"{nope", b"\0" * 8), "not valid JSON"),
        ("header a JSON array", binary([1], b""), "the body"),
    ]
    return [
        Case(f"binary: {name}", path, payload, message=message, headers=headers)
        for name, (path, payload, headers), message in cases
    ]


def _apps_cases() -> list[Case]:
    deep = nested(DEEP)
    return [
        Case("predict: empty", PREDICT, b"", message="the body is empty"),
        Case("predict: not json", PREDICT, b"{nope", message="not valid JSON"),
        Case("predict: an array", PREDICT, b"[1]", message="JSON object"),
        Case("predict: no row", PREDICT, b"{}", message='"input"'),
        Case("predict: both", PREDICT, body(input=ROW, inputs=[ROW]), message="not both"),
        Case("predict: inputs empty", PREDICT, body(inputs=[]), message="inputs:"),
        Case("predict: inputs a string", PREDICT, body(inputs="x"), message="inputs:"),
        Case(
            "predict: input nested 490 deep",
            PREDICT,
            f'{{"input": {deep}}}'.encode(),
            message="input",
        ),
        Case(
            "predict: inputs nested 490 deep",
            PREDICT,
            f'{{"inputs": [{deep}]}}'.encode(),
            message="inputs",
        ),
        Case(
            "predict: a row of strings",
            PREDICT,
            body(input=["x"] * 64),
            message="input",
        ),
        Case("predict: input null", PREDICT, body(input=None), message="input"),
        Case("predict: input an object", PREDICT, body(input={}), message="input"),
        Case("predict: user a number", PREDICT, body(input=ROW, user=7), message="user:"),
        Case("predict: user empty", PREDICT, body(input=ROW, user=""), message="user:"),
        Case("predict: unknown field", PREDICT, body(input=ROW, colour=1), message="colour"),
        Case(
            "predict: cache_report not a boolean",
            PREDICT,
            body(input=ROW, cache_report="yes"),
            message="cache_report",
        ),
        Case("predict: a short row", PREDICT, body(input=[1.0, 2.0]), message="input:"),
        Case("predict: booleans", PREDICT, body(input=[True] * 64), message="input"),
        Case("predict: a bare number", PREDICT, body(input=5), message="input:"),
        Case("predict: unknown app", "/apps/nope/predict", body(input=ROW), status=404),
        Case(
            "predict: ragged rows",
            PREDICT,
            body(inputs=[ROW, [1.0]]),
            message="inputs",
        ),
        Case("feedback: empty", FEEDBACK, b"", message="the body is empty"),
        Case("feedback: no label", FEEDBACK, body(input=ROW), message="label: missing"),
        Case("feedback: label null", FEEDBACK, body(input=ROW, label=None), message="label"),
        Case(
            "feedback: input nested 490 deep",
            FEEDBACK,
            f'{{"input": {deep}, "label": 1}}'.encode(),
            message="input",
        ),
        Case(
            "feedback: label nested 490 deep",
            FEEDBACK,
            f'{{"input": {json.dumps(ROW)}, "label": {deep}}}'.encode(),
            message="label",
        ),
        Case(
            "feedback: query_id a number",
            FEEDBACK,
            body(input=ROW, label=1, query_id=5),
            message="query_id",
        ),
        Case("feedback: user a number", FEEDBACK, body(input=ROW, label=1, user=5), message="user"),
        Case("feedback: a short row", FEEDBACK, body(input=[1, 2], label=1), message="input:"),
        Case(
            "feedback: unknown field", FEEDBACK, body(input=ROW, label=1, extra=1), message="extra"
        ),
        Case(
            "feedback: a label far larger than the model's answer",
            FEEDBACK,
            body(input=ROW, label=["x" * 1000] * 100),
            message="label",
        ),
        Case("feedback: a string row", FEEDBACK, body(input="seven", label=1), message="input"),
    ]


def _routing_cases() -> list[Case]:
    return [
        Case("GET on infer", DIGITS, b"", status=405, method="GET"),
        Case("POST on liveness", "/v2/health/live", b"{}", status=405),
    ]


CASES = [*_oip_json_cases(), *_binary_cases(), *_apps_cases(), *_routing_cases()]


def test_the_table_has_113_cases() -> None:
    assert len(CASES) == 113
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_input_is_a_client_error(http: httpx.Client, case: Case) -> None:
    headers = {"content-type": "application/json", **case.headers}
    answer = http.request(case.method, case.path, content=case.body, headers=headers)
    assert answer.status_code == case.status, answer.text
    error = answer.json()["error"]
    assert isinstance(error, str)
    assert error
    assert case.message in error
