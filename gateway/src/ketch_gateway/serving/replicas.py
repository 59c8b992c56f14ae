"""The wrappers that serve one model version, and which of them can take a call.

Each replica has a gRPC channel of its own, tuned to notice a host that vanished
without closing its connections (a cut link, a machine that lost power): the
channel pings the wrapper every half second and gives up on a ping after a
second, which fails the calls in flight as UNAVAILABLE, so that the replica
leaves the rotation within two seconds and its batches go to another replica.
Reconnection backs off to at most a second and a half, so that a replica whose
host comes back is probed healthy again within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final, Protocol

import numpy as np

from ketch import (
    AsyncWrapperClient,
    Capabilities,
    ClientTls,
    ModelMetadata,
    ObserveResult,
    WrapperCallError,
)
from ketch_gateway.errors import (
    ApiError,
    BadGateway,
    ServiceUnavailable,
    status_for_wrapper_code,
)

__all__ = [
    "CHANNEL_OPTIONS",
    "UNREACHABLE_CODES",
    "Connect",
    "Replica",
    "ReplicaClient",
    "ReplicaSet",
    "connect_grpc",
    "wrapper_error",
]

_log = logging.getLogger(__name__)

UNREACHABLE_CODES = frozenset({"UNAVAILABLE", "UNKNOWN"})
"""gRPC statuses that mean the replica itself is gone, not that the request was bad."""


def wrapper_error(label: str, error: WrapperCallError) -> ApiError:
    """The HTTP error for a failed wrapper call, keeping the wrapper's message."""
    kind = status_for_wrapper_code(error.code)
    if kind is BadGateway:
        return BadGateway(f"{label} failed in its wrapper ({error.code})", error.message)
    return kind(error.message)


class ReplicaClient(Protocol):
    """The calls the gateway makes to a replica: those of :class:`ketch.AsyncWrapperClient`.

    Failed calls raise WrapperCallError with the gRPC status name.
    """

    async def health(self, service: str = "") -> str:
        """The ``grpc.health.v1`` status: ``SERVING``, ``NOT_SERVING``, ..."""
        ...

    async def model_metadata(self, model: str | None = None, version: str = "") -> ModelMetadata:
        """The model's versions, platform and tensors."""
        ...

    async def capabilities(self, model: str | None = None, version: str = "") -> Capabilities:
        """Devices, online learning, maximum batch."""
        ...

    async def infer(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        model: str | None = None,
        version: str = "",
        outputs: Sequence[str] | None = None,
        request_id: str = "",
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, np.ndarray]:
        """The outputs for a batch, by name; ``metadata`` carries the batch's trace context."""
        ...

    async def observe(
        self,
        inputs: Mapping[str, np.ndarray],
        labels: np.ndarray,
        *,
        model: str | None = None,
        version: str = "",
    ) -> ObserveResult:
        """Teach an online-learning model from labelled rows."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


Connect = Callable[[str], ReplicaClient]
"""How the gateway reaches the replica at an address."""


CHANNEL_OPTIONS: Final = (
    ("grpc.keepalive_time_ms", 500),
    ("grpc.keepalive_timeout_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 1000),
    ("grpc.max_reconnect_backoff_ms", 1500),
)
"""Keepalive and reconnection for a gateway's channel to a wrapper (see the module's doc).

``ketch serve`` accepts pings this frequent (``ketch.server.KEEPALIVE_SERVER_OPTIONS``).
"""

PROBE_TIMEOUT_S: Final = 1.0


def connect_grpc(address: str, tls: ClientTls | None = None) -> ReplicaClient:
    """A gRPC channel to the wrapper at ``address`` (TLS with ``tls``); calls set their timeout."""
    return AsyncWrapperClient(address, timeout=None, channel_options=CHANNEL_OPTIONS, tls=tls)


class Replica:
    """One wrapper process, at ``address``; ``managed`` when the gateway started it.

    :param source: the ``dns:`` address it was resolved from, if it was.
    """

    def __init__(
        self,
        address: str,
        *,
        managed: bool = False,
        connect: Connect = connect_grpc,
        source: str | None = None,
    ) -> None:
        self.address = address
        self.managed = managed
        self.source = source
        self.healthy = False
        self.retired = False
        self.in_flight = 0
        self.connect = connect
        self.client = connect(address)
        self.on_unreachable: Callable[[], None] | None = None
        self._idle = asyncio.Event()

    def reconnect(self, address: str) -> None:
        """Point at a new address (a restarted wrapper's), closing the old channel."""
        old = self.client
        self.address = address
        self.client = self.connect(address)
        asyncio.get_running_loop().create_task(old.close())

    async def probe(self, timeout: float = PROBE_TIMEOUT_S) -> bool:
        """Ask the wrapper's health service; remember and return whether it is SERVING."""
        try:
            serving = await asyncio.wait_for(self.client.health(), timeout) == "SERVING"
        except (WrapperCallError, TimeoutError):
            serving = False
        self.healthy = serving and not self.retired
        return self.healthy

    def failed(self, error: WrapperCallError) -> None:
        """Take the replica out of rotation when a call shows it is unreachable."""
        if error.code not in UNREACHABLE_CODES:
            return
        if self.healthy:
            _log.warning(
                "replica %s is unreachable (%s); probing until it is back", self.address, error
            )
            self.healthy = False
        if self.on_unreachable is not None:
            self.on_unreachable()

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Count a call in flight, so that a replica leaving the rotation can finish it."""
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def drain(self, timeout: float) -> None:
        """Take no new calls, wait (up to ``timeout`` s) for those in flight, then close."""
        self.retired = True
        self.healthy = False
        if self.in_flight:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self.client.close()

    def describe(self) -> dict[str, object]:
        """What the admin API shows of it."""
        described: dict[str, object] = {
            "address": self.address,
            "healthy": self.healthy,
            "managed": self.managed,
        }
        if self.source is not None:
            described["source"] = self.source
        return described


class ReplicaSet:
    """The replicas of one model version, taken in turn (round robin over the healthy ones)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.replicas: list[Replica] = []
        self._turn = 0

    def add(self, replica: Replica) -> None:
        """Put a replica in rotation (once it probes healthy)."""
        self.replicas.append(replica)

    def find(self, address: str) -> Replica | None:
        """The replica at ``address``, or None when there is none."""
        return next((replica for replica in self.replicas if replica.address == address), None)

    def remove(self, address: str) -> Replica | None:
        """Take the replica at ``address`` out; it, or None when there is none."""
        replica = self.find(address)
        if replica is not None:
            self.replicas.remove(replica)
        return replica

    def healthy(self) -> list[Replica]:
        """The replicas in rotation now."""
        return [replica for replica in self.replicas if replica.healthy]

    def pick(self) -> Replica:
        """The next healthy replica; ServiceUnavailable when there is none."""
        candidates = self.healthy()
        if not candidates:
            raise ServiceUnavailable(
                f"{self.label} has no healthy replica "
                f"({len(self.replicas)} configured, none answering)",
                headers={"Retry-After": "1"},
            )
        self._turn = (self._turn + 1) % len(candidates)
        return candidates[self._turn]

    async def probe_unhealthy(self) -> None:
        """Probe every replica out of rotation at once, and put back those that answer."""
        waiting = [replica for replica in self.replicas if not replica.healthy]
        answers = await asyncio.gather(*(replica.probe() for replica in waiting))
        for replica, healthy in zip(waiting, answers, strict=True):
            if healthy:
                _log.info("replica %s of %s is back in rotation", replica.address, self.label)

    async def close(self) -> None:
        """Close every channel."""
        for replica in self.replicas:
            await replica.close()
