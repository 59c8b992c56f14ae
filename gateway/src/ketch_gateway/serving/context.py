"""What every model version of one gateway shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from ketch_gateway.control.supervisor import RestartPolicy, StartGate
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.replicas import Connect, connect_grpc

__all__ = ["ServingContext"]


@dataclass(frozen=True)
class ServingContext:
    """The gateway's metrics, how managed wrappers start and restart, how a replica is reached."""

    metrics: Metrics = field(default_factory=Metrics)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    connect: Connect = connect_grpc
    gate: StartGate = field(default_factory=StartGate)
