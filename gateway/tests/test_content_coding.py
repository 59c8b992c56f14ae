"""Compressed requests and responses: gzip and deflate, the limit on what a body inflates to."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from ketch_gateway import GatewayProcess
from ketch_gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ketch_gateway.http.content_coding import Inflater, preferred_coding, request_coding

httpclient = pytest.importorskip("tritonclient.http")

LIMIT = 200_000  # the serving gateways' max_body_bytes
BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB in ~64 KiB


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def inflate(coding: str, body: bytes, limit: int = LIMIT, chunk: int = 7) -> bytes:
    inflater = Inflater(coding, limit)
    parts = [inflater.feed(body[i : i + chunk]) for i in range(0, len(body), chunk)]
    return b"".join([*parts, inflater.finish()])


@pytest.mark.parametrize(
    ("coding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", raw_deflate)],
    ids=["gzip", "deflate", "raw-deflate"],
)
def test_bodies_inflate_whatever_the_chunks(coding: str, compress: Any) -> None:
    document = json.dumps({"input": list(range(500))}).encode()
    assert inflate(coding, compress(document)) == document
    assert inflate(coding, compress(document), chunk=1) == document


def test_a_zip_bomb_is_refused_after_at_most_the_limit() -> None:
    assert len(BOMB) < LIMIT
    inflater = Inflater("gzip", LIMIT)

    def feed_all() -> None:
        for start in range(0, len(BOMB), 65536):
            inflater.feed(BOMB[start : start + 65536])

    with pytest.raises(PayloadTooLarge, match="decompresses to more than the limit of 200000"):
        feed_all()
    assert inflater.size <= LIMIT


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not gzip at all", "not valid gzip data"),
        (gzip.compress(b"{}")[:-6], "cut short"),
        (gzip.compress(b"{}") + b"extra", "data after the compressed body"),
        (b"", "cut short"),
    ],
)
def test_broken_compressed_bodies_are_400(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        inflate("gzip", body)


def test_codings() -> None:
    assert request_coding(None) == "identity"
    assert request_coding(" GZIP ") == "gzip"
    assert request_coding("x-gzip") == "gzip"
    with pytest.raises(UnsupportedMediaType, match="'br' is not supported"):
        request_coding("br")
    assert preferred_coding("gzip, deflate") == "gzip"
    assert preferred_coding("deflate") == "deflate"
    assert preferred_coding("gzip;q=0.5, deflate;q=0.8") == "deflate"
    assert preferred_coding("*") == "gzip"
    assert preferred_coding("identity") is None
    assert preferred_coding("gzip;q=0") is None
    assert preferred_coding(None) is None


def post(http: httpx.Client, path: str, body: bytes, **headers: str) -> httpx.Response:
    return http.post(path, content=body, headers={"content-type": "application/json", **headers})


def test_compressed_requests_through_the_gateway(http: httpx.Client, digits: Any) -> None:
    row = json.dumps({"input": digits[0][5].tolist()}).encode()
    for coding, compress in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        answer = post(http, "/apps/digits/predict", compress(row), **{"content-encoding": coding})
        assert answer.status_code == 200, answer.text
    unknown = post(http, "/apps/digits/predict", row, **{"content-encoding": "br"})
    assert unknown.status_code == 415
    assert unknown.json()["error"] == (
        "Content-Encoding: 'br' is not supported; send gzip, deflate or identity"
    )
    bomb = post(http, "/apps/digits/predict", BOMB, **{"content-encoding": "gzip"})
    assert bomb.status_code == 413
    assert "decompresses to more than the limit" in bomb.json()["error"]


def test_responses_are_compressed_when_asked(http: httpx.Client, digits: Any) -> None:
    document = {"inputs": digits[0][:40].tolist()}
    for coding in ("gzip", "deflate"):
        answer = http.post(
            "/apps/digits/predict", json=document, headers={"accept-encoding": coding}
        )
        assert answer.status_code == 200
        assert answer.headers["content-encoding"] == coding
        assert answer.headers["vary"] == "Accept-Encoding"
        assert len(answer.json()["outputs"]) == 40
    plain = http.post(
        "/apps/digits/predict", json=document, headers={"accept-encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    small = http.get("/v2/health/live", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in small.headers  # too small to gain anything


@pytest.fixture
def triton(serving: GatewayProcess) -> Iterator[Any]:
    client = httpclient.InferenceServerClient(urlparse(serving.url).netloc)
    yield client
    client.close()


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_compresses_both_ways(
    triton: Any, digits: Any, digits_classifier: Any, coding: str, binary: bool
) -> None:
    rows = digits[0][1300:1364]
    tensor = httpclient.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("predict_proba", binary_data=binary)]
    result = triton.infer(
        "digits",
        [tensor],
        outputs=outputs,
        request_compression_algorithm=coding,
        response_compression_algorithm=coding,
    )
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), digits_classifier.predict_proba(rows)
    )
