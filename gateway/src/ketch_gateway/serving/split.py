"""Which version answers a request: a fixed split, sticky per user.

A request's place in ``[0, 1)`` is a hash of its user id (or, when it names no user,
a random draw, so anonymous requests spread by share), keyed by the model's name so
that two models split their users independently. The split gives each version a
slice of ``[0, 1)`` in its declared order; a version listed last keeps its users when
its share grows (a canary's users stay on it from step to step). Choosing is one hash
and a scan of a few thresholds: no store, no lock.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping
from typing import Final

__all__ = ["Split", "place"]

_SCALE: Final = float(1 << 64)


def place(model: str, key: str) -> float:
    """The place of ``key`` in ``[0, 1)`` for ``model``: stable across processes and restarts."""
    return _place(model.encode()[:64], key)


def _place(salt: bytes, key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "big") / _SCALE


class Split:
    """Shares of a model's traffic by version (they add up to 1), in their declared order."""

    __slots__ = ("_bounds", "_salt", "_versions", "model", "shares")

    def __init__(self, model: str, shares: Mapping[str, float]) -> None:
        self.model = model
        self._salt = model.encode()[:64]
        self.shares = dict(shares)
        self._versions = [version for version, share in self.shares.items() if share > 0]
        bounds: list[float] = []
        total = 0.0
        for version in self._versions:
            total += self.shares[version]
            bounds.append(total)
        bounds[-1] = 1.0
        self._bounds = bounds

    def choose(self, key: str) -> str:
        """The version that answers for ``key`` (a user id)."""
        if len(self._versions) == 1:
            return self._versions[0]
        return self.choose_at(_place(self._salt, key))

    def choose_at(self, where: float) -> str:
        """The version whose slice holds ``where`` (in ``[0, 1)``)."""
        index = bisect.bisect_right(self._bounds, where)
        return self._versions[min(index, len(self._versions) - 1)]

    def as_json(self) -> dict[str, float]:
        """The shares, as the admin API shows them."""
        return dict(self.shares)
