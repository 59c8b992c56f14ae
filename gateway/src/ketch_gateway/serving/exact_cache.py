"""The exact prediction cache: one model version's answers, by the bytes of each input row.

The key of a row is a digest of every input's name, datatype, row shape and raw
bytes: never a request id or the request body, so the same row hits whatever
request carries it. Entries are held within a byte budget, least recently used
first out, and expire after a time-to-live when one is set (for models that
learn online).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ketch import datatype_of
from ketch.tensors import encode_raw
from ketch_gateway.serving.predictor import RowAnswer

__all__ = ["ExactCache", "answer_bytes", "row_key"]

ENTRY_OVERHEAD_BYTES = 200
"""What an entry costs beyond its arrays (key, dictionary slots, objects), roughly."""


def row_key(inputs: Mapping[str, np.ndarray], row: int) -> bytes:
    """The digest of row ``row`` of every input: name, datatype, row shape and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for name, array in inputs.items():
        values = array[row : row + 1]
        digest.update(name.encode())
        digest.update(datatype_of(array.dtype).encode())
        digest.update(str(array.shape[1:]).encode())
        if array.dtype == object:
            digest.update(encode_raw(values, "BYTES"))
        else:
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.digest()


def answer_bytes(answer: RowAnswer) -> int:
    """Roughly how much memory an answer holds."""
    size = ENTRY_OVERHEAD_BYTES
    for array in answer.values():
        size += array.nbytes
        if array.dtype == object:
            size += sum(len(item) for item in array.reshape(-1) if isinstance(item, bytes | str))
    return size


@dataclass(slots=True)
class _Entry:
    answer: RowAnswer
    size: int
    expires: float | None


class ExactCache:
    """Answers by row key, within ``max_bytes``, least recently used evicted first."""

    def __init__(
        self,
        max_bytes: int,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.clock = clock
        self.bytes_held = 0
        self.evictions = 0
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> RowAnswer | None:
        """The answer stored under ``key``, if present and fresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= self.clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.answer

    def put(self, key: bytes, answer: RowAnswer) -> None:
        """Store an answer, evicting the least recently used ones to stay within budget."""
        size = answer_bytes(answer) + len(key)
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._remove(key)
        while self.bytes_held + size > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self.evictions += 1
        expires = self.clock() + self.ttl_s if self.ttl_s else None
        self._entries[key] = _Entry(answer, size, expires)
        self.bytes_held += size

    def _remove(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        self.bytes_held -= entry.size

    def clear(self) -> None:
        """Forget every answer."""
        self._entries.clear()
        self.bytes_held = 0
