"""The wrappers that serve one model version, and which of them can take a call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from ketch import AsyncWrapperClient, Capabilities, ModelMetadata, ObserveResult, WrapperCallError
from ketch_gateway.errors import ApiError, ServiceUnavailable, status_for_wrapper_code

__all__ = [
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
    if kind is ApiError:
        return ApiError(f"{label} failed: {error.code}: {error.message}")
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


def connect_grpc(address: str) -> ReplicaClient:
    """A gRPC channel to the wrapper at ``address``; each call sets its own timeout."""
    return AsyncWrapperClient(address, timeout=None)


class Replica:
    """One wrapper process, at ``address``; ``managed`` when the gateway started it."""

    def __init__(
        self, address: str, *, managed: bool = False, connect: Connect = connect_grpc
    ) -> None:
        self.address = address
        self.managed = managed
        self.healthy = False
        self.connect = connect
        self.client = connect(address)

    def reconnect(self, address: str) -> None:
        """Point at a new address (a restarted wrapper's), closing the old channel."""
        old = self.client
        self.address = address
        self.client = self.connect(address)
        asyncio.get_running_loop().create_task(old.close())

    async def probe(self, timeout: float = 2.0) -> bool:
        """Ask the wrapper's health service; remember and return whether it is SERVING."""
        try:
            self.healthy = await asyncio.wait_for(self.client.health(), timeout) == "SERVING"
        except (WrapperCallError, TimeoutError):
            self.healthy = False
        return self.healthy

    def failed(self, error: WrapperCallError) -> None:
        """Take the replica out of rotation when a call shows it is unreachable."""
        if error.code in UNREACHABLE_CODES and self.healthy:
            _log.warning(
                "replica %s is unreachable (%s); probing until it is back", self.address, error
            )
            self.healthy = False

    async def close(self) -> None:
        """Close the channel."""
        await self.client.close()

    def describe(self) -> dict[str, object]:
        """What the admin API shows of it."""
        return {"address": self.address, "healthy": self.healthy, "managed": self.managed}


class ReplicaSet:
    """The replicas of one model version, taken in turn (round robin over the healthy ones)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.replicas: list[Replica] = []
        self._turn = 0

    def add(self, replica: Replica) -> None:
        """Put a replica in rotation (once it probes healthy)."""
        self.replicas.append(replica)

    def remove(self, address: str) -> Replica | None:
        """Take the replica at ``address`` out; it, or None when there is none."""
        for replica in self.replicas:
            if replica.address == address:
                self.replicas.remove(replica)
                return replica
        return None

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
        """Probe every replica out of rotation, and put back those that answer."""
        for replica in self.replicas:
            if not replica.healthy and await replica.probe():
                _log.info("replica %s of %s is back in rotation", replica.address, self.label)

    async def close(self) -> None:
        """Close every channel."""
        for replica in self.replicas:
            await replica.close()
