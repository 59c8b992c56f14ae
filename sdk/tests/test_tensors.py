from __future__ import annotations

import struct

import numpy as np
import pytest

from ketch import InvalidInputError, datatype_of, numpy_dtype, text_rows
from ketch.tensors import decode_raw, encode_raw

NUMERIC = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
]


@pytest.mark.parametrize("datatype", NUMERIC)
def test_numeric_round_trip(datatype: str) -> None:
    rng = np.random.default_rng(1)
    array = (
        (rng.uniform(0, 100, size=(3, 4)) > 50)
        if datatype == "BOOL"
        else (rng.uniform(0, 100, size=(3, 4)).astype(numpy_dtype(datatype)))
    )
    raw = encode_raw(array, datatype)
    assert len(raw) == array.size * numpy_dtype(datatype).itemsize
    decoded = decode_raw("x", datatype, [3, 4], raw)
    assert decoded.dtype == numpy_dtype(datatype)
    np.testing.assert_array_equal(decoded, array)
    assert datatype_of(decoded.dtype) == datatype


def test_raw_is_little_endian_row_major() -> None:
    raw = encode_raw(np.array([[1, 2], [3, 4]], dtype=np.int32))
    assert raw == struct.pack("<4i", 1, 2, 3, 4)


def test_bytes_round_trip_with_length_prefixes() -> None:
    array = np.array([b"a", b"", "caf\u00e9"], dtype=object)
    raw = encode_raw(array, "BYTES")
    assert raw == b"\x01\x00\x00\x00a" + b"\x00\x00\x00\x00" + b"\x05\x00\x00\x00caf\xc3\xa9"
    decoded = decode_raw("text", "BYTES", [3], raw)
    assert decoded.tolist() == [b"a", b"", "caf\u00e9".encode()]


def test_numpy_strings_encode_as_bytes() -> None:
    assert datatype_of(np.array(["ab"]).dtype) == "BYTES"
    assert encode_raw(np.array(["ab"])) == b"\x02\x00\x00\x00ab"


def test_byte_count_mismatch_names_tensor_and_sizes() -> None:
    with pytest.raises(InvalidInputError, match=r"'x': 7 bytes .* \[2, 1\] of FP32, which takes 8"):
        decode_raw("x", "FP32", [2, 1], b"\x00" * 7)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x01\x00", "inside an element's 4-byte length prefix"),
        (b"\x09\x00\x00\x00abc", "declares 9 bytes but only 3 remain"),
        (b"\x01\x00\x00\x00a", "hold 1 elements but the shape needs 2"),
    ],
)
def test_malformed_bytes_tensors(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        decode_raw("t", "BYTES", [2], raw)


def test_negative_dimension_and_unknown_datatype() -> None:
    with pytest.raises(InvalidInputError, match="negative dimension"):
        decode_raw("x", "FP32", [-1, 2], b"")
    with pytest.raises(InvalidInputError, match="unknown datatype 'FP8'"):
        decode_raw("x", "FP8", [1], b"\x00")
    with pytest.raises(InvalidInputError, match="BF16 is not supported"):
        numpy_dtype("BF16")


def test_shapes_too_large_for_numpy_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="too large"):
        decode_raw("x", "FP64", [0, 4611686018427387904], b"")
    with pytest.raises(InvalidInputError, match="65 dimensions; at most 64"):
        decode_raw("x", "FP64", [1] * 65, b"\x00" * 8)
    assert decode_raw("x", "FP64", [0, 2**20], b"").shape == (0, 2**20)


def test_unsupported_numpy_dtype() -> None:
    with pytest.raises(InvalidInputError, match="complex128"):
        datatype_of(np.dtype(np.complex128))


def test_text_rows_decode_utf8_and_name_the_bad_row() -> None:
    column = np.array([b"caf\xc3\xa9", "plain", b"x"], dtype=object)
    assert text_rows(column, "text") == ["café", "plain", "x"]
    with pytest.raises(InvalidInputError, match="input 'text' row 1 is not valid UTF-8"):
        text_rows(np.array([b"ok", b"\xff"], dtype=object), "text")
