"""What every model version of one gateway shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ketch_gateway.control.supervisor import RestartPolicy, StartGate
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.discovery import DiscoverySettings
from ketch_gateway.serving.replicas import Connect, connect_grpc

__all__ = ["ServingContext"]


@dataclass(frozen=True)
class ServingContext:
    """The gateway's metrics, how managed wrappers start and restart, how a replica is reached.

    ``connect`` reaches replicas at configured addresses (with TLS when the gateway
    is told to use it); ``connect_managed`` the wrappers it started itself, which
    listen on the loopback interface; ``discovery`` how ``dns:`` addresses are looked up.

    ``parent_wrappers`` is set in a worker of ``--workers N``: the managed wrappers are
    its parent's, at these addresses (by model, then version), and the worker starts none.
    """

    metrics: Metrics = field(default_factory=Metrics)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    connect: Connect = connect_grpc
    gate: StartGate = field(default_factory=StartGate)
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)
    connect_managed: Connect = connect_grpc
    parent_wrappers: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None

    @property
    def launches_wrappers(self) -> bool:
        """Whether this process starts managed wrappers (not a worker of ``--workers N``)."""
        return self.parent_wrappers is None
