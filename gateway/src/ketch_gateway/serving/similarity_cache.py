"""The approximate prediction cache: locality-sensitive hashing, then a similarity check.

A row close enough to one answered before gets that answer. Candidates come
from LSH buckets; an answer is reused only when the stored input's similarity
to the new one reaches the threshold, so a bucket collision never passes on a
wrong neighbour's answer unchecked.

- Dense numeric rows: random hyperplanes (``bits`` per table, ``tables`` tables)
  through a centre, the mean of the first rows seen, because raw features such
  as pixel intensities all lie on one side of the origin; similarity is the
  cosine of the centred rows.
- Text rows (BYTES): MinHash over the set of lower-cased words, in ``tables``
  bands of ``bits`` hashes; similarity is the Jaccard index of the word sets.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

import numpy as np

from ketch_gateway.serving.predictor import RowAnswer

__all__ = ["HyperplaneIndex", "MinHashIndex", "SimilarityIndex", "words"]

Key = TypeVar("Key")
Item = TypeVar("Item")

MERSENNE = (1 << 61) - 1


class SimilarityIndex(Generic[Item, Key]):
    """Entries in LSH buckets, oldest evicted beyond ``capacity``; subclasses hash and compare."""

    def __init__(self, tables: int, threshold: float, capacity: int) -> None:
        self.threshold = threshold
        self.capacity = capacity
        self._buckets: list[dict[Hashable, set[int]]] = [{} for _ in range(tables)]
        self._entries: dict[int, tuple[Key, tuple[Hashable, ...], RowAnswer]] = {}
        self._order: deque[int] = deque()
        self._next = 0

    def __len__(self) -> int:
        return len(self._entries)

    def prepare(self, item: Item) -> Key | None:
        """What is stored and compared for ``item`` (None: it cannot be indexed yet)."""
        raise NotImplementedError

    def codes(self, key: Key) -> tuple[Hashable, ...]:
        """One bucket code per table."""
        raise NotImplementedError

    def similarity(self, stored: Key, query: Key) -> float:
        """How alike two prepared items are, 1.0 for identical."""
        raise NotImplementedError

    def lookup(self, item: Item) -> tuple[RowAnswer, float] | None:
        """The answer of the most similar stored item at or above the threshold, and the score."""
        key = self.prepare(item)
        if key is None:
            return None
        candidates: set[int] = set()
        for table, code in zip(self._buckets, self.codes(key), strict=True):
            candidates |= table.get(code, set())
        best: tuple[RowAnswer, float] | None = None
        for candidate in candidates:
            stored, _, answer = self._entries[candidate]
            score = self.similarity(stored, key)
            if score >= self.threshold and (best is None or score > best[1]):
                best = (answer, score)
        return best

    def add(self, item: Item, answer: RowAnswer) -> None:
        """Index an answered item."""
        key = self.prepare(item)
        if key is None:
            return
        codes = self.codes(key)
        entry = self._next
        self._next += 1
        self._entries[entry] = (key, codes, answer)
        self._order.append(entry)
        for table, code in zip(self._buckets, codes, strict=True):
            table.setdefault(code, set()).add(entry)
        while len(self._entries) > self.capacity:
            self._evict(self._order.popleft())

    def _evict(self, entry: int) -> None:
        _, codes, _ = self._entries.pop(entry)
        for table, code in zip(self._buckets, codes, strict=True):
            bucket = table[code]
            bucket.discard(entry)
            if not bucket:
                del table[code]


class HyperplaneIndex(SimilarityIndex[np.ndarray, np.ndarray]):
    """Random-hyperplane LSH for dense rows, with cosine similarity around a learnt centre."""

    def __init__(
        self,
        dimensions: int,
        *,
        bits: int = 12,
        tables: int = 8,
        threshold: float = 0.95,
        capacity: int = 100_000,
        warmup: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(tables, threshold, capacity)
        rng = np.random.default_rng(seed)
        self._planes = rng.standard_normal((tables * bits, dimensions))
        self._tables = tables
        self._bits = bits
        self._weights = 1 << np.arange(bits, dtype=np.int64)
        self._warmup = warmup
        self._seen: list[np.ndarray] = []
        self.centre: np.ndarray | None = None

    def prepare(self, item: np.ndarray) -> np.ndarray | None:
        """The row, centred and normalised; None while the centre is still being learnt."""
        row = np.asarray(item, dtype=np.float64).reshape(-1)
        if self.centre is None:
            self._seen.append(row)
            if len(self._seen) < self._warmup:
                return None
            self.centre = np.mean(self._seen, axis=0)
            self._seen.clear()
        centred = row - self.centre
        norm = float(np.linalg.norm(centred))
        return centred / norm if norm else centred

    def codes(self, key: np.ndarray) -> tuple[Hashable, ...]:
        """The sign pattern of the row against each table's hyperplanes, as integers."""
        signs = (self._planes @ key > 0).reshape(self._tables, self._bits)
        return tuple(int(code) for code in signs @ self._weights)

    def similarity(self, stored: np.ndarray, query: np.ndarray) -> float:
        """Cosine similarity of the centred rows."""
        return float(stored @ query)


def words(text: bytes | str) -> frozenset[str]:
    """The set of lower-cased words in a text."""
    decoded = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    return frozenset(re.findall(r"\w+", decoded.lower()))


def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


class MinHashIndex(SimilarityIndex[bytes | str, tuple[frozenset[str], np.ndarray]]):
    """MinHash LSH for text rows, with the Jaccard index of their word sets."""

    def __init__(
        self,
        *,
        bits: int = 4,
        tables: int = 16,
        threshold: float = 0.8,
        capacity: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__(tables, threshold, capacity)
        rng = np.random.default_rng(seed)
        count = tables * bits
        self._a = rng.integers(1, MERSENNE, size=count, dtype=np.uint64).astype(object)
        self._b = rng.integers(0, MERSENNE, size=count, dtype=np.uint64).astype(object)
        self._tables = tables
        self._bits = bits

    def prepare(self, item: bytes | str) -> tuple[frozenset[str], np.ndarray] | None:
        """The word set and its MinHash signature (None for a text without words)."""
        tokens = words(item)
        if not tokens:
            return None
        hashes = [_token_hash(token) for token in tokens]
        signature = np.array(
            [
                min((a * h + b) % MERSENNE for h in hashes)
                for a, b in zip(self._a, self._b, strict=True)
            ],
            dtype=object,
        )
        return tokens, signature

    def codes(self, key: tuple[frozenset[str], np.ndarray]) -> tuple[Hashable, ...]:
        """One band of the signature per table."""
        signature = key[1]
        return tuple(
            tuple(signature[band * self._bits : (band + 1) * self._bits])
            for band in range(self._tables)
        )

    def similarity(
        self, stored: tuple[frozenset[str], np.ndarray], query: tuple[frozenset[str], np.ndarray]
    ) -> float:
        """The Jaccard index of the two word sets."""
        union = stored[0] | query[0]
        return len(stored[0] & query[0]) / len(union) if union else 1.0
