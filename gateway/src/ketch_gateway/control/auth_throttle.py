"""How often one client address may fail to authenticate to the admin API.

Each address has a bucket of ``failures`` attempts that refills at ``failures``
per ``window_s`` seconds; a failed authentication takes one, and an address with
an empty bucket is refused (429 with ``Retry-After``) without its token being
checked, so that guessing the token runs at the refill rate at most. A successful
authentication empties the address's record. At most :data:`MAX_ADDRESSES`
addresses are remembered (the least recently failing are forgotten first), so that
failures from many addresses cannot grow the gateway's memory without bound.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["MAX_ADDRESSES", "AuthThrottle"]

MAX_ADDRESSES: Final = 10_000


class AuthThrottle:
    """Failed authentications per client address, as a refilling bucket each.

    :param clock: seconds, monotonic (tests may pass their own).
    """

    def __init__(
        self, failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = float(failures)
        self.rate = failures / window_s
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, address: str, now: float) -> float:
        entry = self._buckets.get(address)
        if entry is None:
            return self.capacity
        tokens, then = entry
        return min(self.capacity, tokens + (now - then) * self.rate)

    def wait_s(self, address: str) -> float:
        """Seconds before ``address`` may try again; 0 when it may now."""
        tokens = self._tokens(address, self.clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def failed(self, address: str) -> None:
        """Count a failed authentication from ``address``."""
        now = self.clock()
        tokens = self._tokens(address, now) - 1.0
        self._buckets[address] = (tokens, now)
        self._buckets.move_to_end(address)
        while len(self._buckets) > MAX_ADDRESSES:
            self._buckets.popitem(last=False)

    def succeeded(self, address: str) -> None:
        """Forget the failures of ``address``: it holds the token."""
        self._buckets.pop(address, None)

    def __len__(self) -> int:
        """How many addresses have failures on record."""
        return len(self._buckets)
