"""Property-based fuzzing of the gateway's decoders: any body is decoded or refused with a 4xx.

Hypothesis generates Open Inference Protocol bodies (JSON and binary tensors), Apps
API rows and labels, and compressed bodies, near the valid ones and far from them.
Whatever it makes, a decoder either returns what the body holds or raises an error
that the gateway answers with a 4xx naming the problem; nothing else may escape.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ketch import TensorSpec
from ketch.datatypes import DATATYPES
from ketch_gateway.correction.labels import check_label_size
from ketch_gateway.correction.rows import inputs_from_rows
from ketch_gateway.errors import ApiError
from ketch_gateway.http.content_coding import Inflater
from ketch_gateway.http.oip_codec import parse_infer_request

FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=40,
)
deep_lists = st.integers(min_value=1, max_value=600).map(
    lambda depth: "[" * depth + "1" + "]" * depth
)
datatypes = st.sampled_from([*DATATYPES, "FLOAT", ""])
shapes = st.lists(
    st.one_of(st.integers(min_value=0, max_value=5), st.sampled_from([2**40, 2**62, -1])),
    max_size=4,
)


def refused_or_decoded(decode: Any) -> Any:
    """What ``decode()`` returns, or None when it refused with a client error."""
    refusal: ApiError | None = None
    try:
        return decode()
    except ApiError as error:
        refusal = error
    assert 400 <= refusal.status < 500, refusal.message
    assert refusal.message
    return None


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    """A tensor description: mostly well-formed, with any part replaced by anything."""
    shape = draw(shapes)
    elements = math.prod(shape)
    count = elements if 0 <= elements <= 50 else 3
    tensor: dict[str, Any] = {
        "name": draw(st.sampled_from(["input", "x", ""]) | json_values),
        "datatype": draw(datatypes | json_values),
        "shape": shape,
        "data": draw(st.lists(scalars, min_size=count, max_size=count) | json_values | deep_lists),
    }
    for key in draw(st.sets(st.sampled_from(sorted(tensor)))):
        tensor[key] = draw(json_values)
    return tensor


def document_bytes(document: dict[str, Any]) -> bytes:
    """The JSON text, with deep-list placeholders spliced in as raw JSON."""
    text = json.dumps(document)
    for tensor in document.get("inputs", []) if isinstance(document.get("inputs"), list) else []:
        data = tensor.get("data") if isinstance(tensor, dict) else None
        if isinstance(data, str) and data.startswith("["):
            text = text.replace(json.dumps(data), data, 1)
    return text.encode()


ISSUE_15_TENSORS = [
    {"name": "input", "shape": [0, 4611686018427387904], "datatype": "FP64", "data": []},
    {"name": "input", "shape": [1, 1], "datatype": "FP64", "data": "[" * 1000 + "1" + "]" * 1000},
    {"name": "input", "shape": [1] * 65, "datatype": "FP64", "data": [1.0]},
]
"""Bodies that answered 500 before issue 15: each is always tried, then generated ones."""


@FUZZ
@given(
    inputs=st.lists(tensors(), max_size=3) | json_values,
    extra=st.dictionaries(st.sampled_from(["id", "parameters", "outputs"]), json_values),
)
@example(inputs=[ISSUE_15_TENSORS[0]], extra={})
@example(inputs=[ISSUE_15_TENSORS[1]], extra={})
@example(inputs=[ISSUE_15_TENSORS[2]], extra={})
def test_json_infer_bodies_are_decoded_or_refused(inputs: Any, extra: dict[str, Any]) -> None:
    document = {"inputs": inputs, **extra}
    parsed = refused_or_decoded(lambda: parse_infer_request(document_bytes(document), None))
    if parsed is not None:
        for tensor in inputs:
            assert list(parsed.inputs[tensor["name"]].shape) == tensor["shape"]


@FUZZ
@given(
    header=st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["input", "y"]),
                "datatype": datatypes,
                "shape": shapes,
                "parameters": st.fixed_dictionaries(
                    {"binary_data_size": st.integers(min_value=-2, max_value=64) | json_values}
                ),
            }
        ),
        min_size=1,
        max_size=2,
    ),
    payload=st.binary(max_size=96),
    length=st.none() | st.integers(min_value=-5, max_value=4000).map(str) | st.text(max_size=4),
)
def test_binary_infer_bodies_are_decoded_or_refused(
    header: list[dict[str, Any]], payload: bytes, length: str | None
) -> None:
    document = json.dumps({"inputs": header}).encode()
    declared = str(len(document)) if length is None else length
    refused_or_decoded(lambda: parse_infer_request(document + payload, declared))


@FUZZ
@given(
    values=st.lists(st.integers(-(2**24), 2**24), max_size=12),
    datatype=st.sampled_from(["BYTES", "FP32", "INT64"]),
)
def test_binary_tensors_round_trip(values: list[int], datatype: str) -> None:
    if datatype == "BYTES":
        elements = [str(v).encode() for v in values]
        raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
        expected: list[Any] = elements
    else:
        array = np.asarray(values, dtype="<f4" if datatype == "FP32" else "<i8")
        raw, expected = array.tobytes(), array.tolist()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": datatype,
                    "shape": [len(values)],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    parsed = parse_infer_request(header + raw, str(len(header)))
    assert parsed.inputs["x"].tolist() == expected


@st.composite
def specs(draw: st.DrawFn) -> list[TensorSpec]:
    """One or two input specs of a model, with fixed or variable row dimensions."""
    names = draw(st.sets(st.sampled_from(["a", "b", "input"]), min_size=1, max_size=2))
    return [
        TensorSpec(
            name,
            draw(st.sampled_from([d for d in DATATYPES if d != "BF16"])),
            (-1, *draw(st.lists(st.sampled_from([-1, 1, 2, 3]), max_size=2))),
        )
        for name in sorted(names)
    ]


@FUZZ
@given(model=specs(), rows=st.lists(json_values | deep_lists, max_size=4))
def test_apps_rows_are_converted_or_refused(model: list[TensorSpec], rows: list[Any]) -> None:
    converted = refused_or_decoded(lambda: inputs_from_rows(rows, model))
    if converted is not None:
        assert set(converted) == {spec.name for spec in model}
        assert all(len(array) == len(rows) for array in converted.values())


@FUZZ
@given(outputs=specs(), label=json_values)
def test_labels_are_bounded_or_refused(outputs: list[TensorSpec], label: Any) -> None:
    refused_or_decoded(lambda: check_label_size(label, outputs, "m"))


@FUZZ
@given(
    coding=st.sampled_from(["gzip", "deflate", "identity"]),
    body=st.binary(max_size=200) | st.binary(max_size=200).map(zlib.compress),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_compressed_bodies_are_inflated_or_refused(coding: str, body: bytes, chunk: int) -> None:
    inflater = Inflater(coding, limit=300)

    def inflate() -> bytes:
        parts = [inflater.feed(body[i : i + chunk]) for i in range(0, len(body), chunk)]
        return b"".join([*parts, inflater.finish()])

    refused_or_decoded(inflate)
    assert inflater.size <= 300
