"""The exact cache and the similarity indexes, on their own."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ketch_gateway.serving.exact_cache import ExactCache, answer_bytes, row_key
from ketch_gateway.serving.similarity_cache import HyperplaneIndex, MinHashIndex, words


def answer(value: float) -> dict[str, np.ndarray]:
    return {"label": np.array([value])}


def test_row_keys_depend_on_name_datatype_shape_and_bytes() -> None:
    rows = np.arange(12, dtype=np.float64).reshape(3, 4)
    key = row_key({"x": rows}, 1)
    assert key == row_key({"x": rows.copy()}, 1)
    assert key != row_key({"x": rows}, 2)
    assert key != row_key({"y": rows}, 1)
    assert key != row_key({"x": rows.astype(np.float32)}, 1)
    assert key != row_key({"x": rows.reshape(3, 2, 2)}, 1)
    texts = np.array([b"a b", b"a b", b"b a"], dtype=object)
    assert row_key({"t": texts}, 0) == row_key({"t": texts}, 1) != row_key({"t": texts}, 2)


def test_least_recently_used_answers_go_first() -> None:
    size = answer_bytes(answer(0)) + 16
    cache = ExactCache(max_bytes=3 * size)
    for name in (b"a" * 16, b"b" * 16, b"c" * 16):
        cache.put(name, answer(ord(name[:1])))
    assert cache.get(b"a" * 16) is not None
    cache.put(b"d" * 16, answer(4))
    assert cache.get(b"b" * 16) is None, "b was the least recently used"
    assert cache.get(b"a" * 16) is not None
    assert (len(cache), cache.evictions, cache.bytes_held) == (3, 1, 3 * size)


def test_answers_expire_after_the_time_to_live() -> None:
    now = [0.0]
    cache = ExactCache(max_bytes=10_000, ttl_s=5.0, clock=lambda: now[0])
    cache.put(b"k", answer(1))
    now[0] = 4.9
    assert cache.get(b"k") is not None
    now[0] = 5.0
    assert cache.get(b"k") is None
    assert cache.bytes_held == 0


def test_an_answer_bigger_than_the_budget_is_not_stored() -> None:
    cache = ExactCache(max_bytes=1024)
    cache.put(b"k", {"big": np.zeros(1000)})
    assert len(cache) == 0


@pytest.fixture(scope="module")
def digit_rows() -> np.ndarray:
    rows: np.ndarray = load_digits().data / 16.0
    return rows


def test_hyperplanes_find_a_close_row_and_refuse_a_different_one(digit_rows: np.ndarray) -> None:
    index = HyperplaneIndex(64, bits=8, tables=8, threshold=0.95, warmup=16)
    for position, row in enumerate(digit_rows[:100]):
        index.add(row, answer(position))
    rng = np.random.default_rng(0)
    found = index.lookup(digit_rows[50] + rng.normal(0, 0.02, 64))
    assert found is not None
    assert found[0]["label"][0] == 50
    assert found[1] >= 0.95


def test_no_answer_below_the_similarity_threshold(digit_rows: np.ndarray) -> None:
    index = HyperplaneIndex(64, bits=2, tables=4, threshold=0.0, warmup=16)
    for position, row in enumerate(digit_rows[:100]):
        index.add(row, answer(position))
    found = index.lookup(digit_rows[1500])
    assert found is not None, "with 2 bits per table every bucket is crowded"
    index.threshold = found[1] + 1e-9
    assert index.lookup(digit_rows[1500]) is None


def test_hyperplanes_learn_their_centre_first(digit_rows: np.ndarray) -> None:
    index = HyperplaneIndex(64, warmup=10)
    for row in digit_rows[:9]:
        index.add(row, answer(0))
    assert len(index) == 0, "nothing is indexed while the centre is being learnt"
    index.add(digit_rows[9], answer(9))
    assert isinstance(index.centre, np.ndarray)
    assert len(index) == 1


def test_indexes_hold_at_most_their_capacity(digit_rows: np.ndarray) -> None:
    index = HyperplaneIndex(64, warmup=1, capacity=10, threshold=0.999)
    for position, row in enumerate(digit_rows[:30]):
        index.add(row, answer(position))
    assert len(index) == 10
    assert index.lookup(digit_rows[0]) is None, "the oldest rows were evicted"
    assert index.lookup(digit_rows[29]) is not None


def test_minhash_matches_word_sets() -> None:
    index = MinHashIndex(threshold=0.8)
    index.add(b"the storm brings rain and wind", answer(1))
    index.add(b"the team scored a late goal", answer(2))
    found = index.lookup(b"Wind and RAIN: the storm brings")
    assert found is not None
    assert found[0]["label"][0] == 1
    assert found[1] == 1.0
    assert index.lookup(b"a quiet recipe for soup") is None
    assert words("Hello, hello WORLD!") == frozenset({"hello", "world"})
