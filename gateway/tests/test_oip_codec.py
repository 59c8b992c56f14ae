"""The OIP REST codec's response encoding: strict JSON, binary outputs after the header."""

from __future__ import annotations

import json

import numpy as np

from ketch_gateway.http.oip_codec import encode_infer_response


def _refuse(literal: str) -> None:
    """``json.loads`` calls this for NaN and Infinity: strict JSON has neither."""
    raise ValueError(f"{literal} is not JSON")


def test_a_json_response_is_strict_json_with_the_outputs() -> None:
    outputs = {
        "predict": np.array([3, 7], dtype=np.int64),
        "score": np.array([[0.25, float("nan")], [float("inf"), -1.5]]),
        "label": np.array([b"seven", "\u00e9t\u00e9".encode()], dtype=object),
    }
    body, header_length = encode_infer_response(
        model="digits",
        version="2",
        outputs=outputs,
        datatypes={"predict": "INT64", "score": "FP64", "label": "BYTES"},
        binary=[],
        request_id="r-1",
        parameters={"ketch_cache": "uncached"},
    )
    assert header_length is None
    document = json.loads(body, parse_constant=_refuse)
    assert document["model_name"] == "digits"
    assert document["model_version"] == "2"
    assert document["id"] == "r-1"
    assert document["parameters"] == {"ketch_cache": "uncached"}
    predict, score, label = document["outputs"]
    assert predict == {"name": "predict", "datatype": "INT64", "shape": [2], "data": [3, 7]}
    assert score["shape"] == [2, 2]
    assert score["data"] == [0.25, "NaN", "Infinity", -1.5]  # as protobuf's JSON mapping
    assert label["data"] == ["seven", "\u00e9t\u00e9"]


def test_binary_outputs_follow_the_json_header() -> None:
    body, header_length = encode_infer_response(
        model="m",
        version="1",
        outputs={"predict": np.array([1, 2], dtype=np.int64)},
        datatypes={"predict": "INT64"},
        binary=["predict"],
        request_id=None,
    )
    assert header_length is not None
    header = json.loads(body[:header_length])
    assert "id" not in header
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(body[header_length:], dtype="<i8").tolist() == [1, 2]
