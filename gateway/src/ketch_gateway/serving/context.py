"""What every model version of one gateway shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ketch_gateway.control.supervisor import RestartPolicy
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.replicas import Connect, connect_grpc

__all__ = ["ServingContext"]


@dataclass(frozen=True)
class ServingContext:
    """The gateway's metrics, how its managed wrappers restart, and how it reaches a replica.

    ``wrapper_environment`` is added to the environment of the wrappers it starts
    (the ``[tracing]`` table's settings, so that they trace as the gateway does).
    """

    metrics: Metrics = field(default_factory=Metrics)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    connect: Connect = connect_grpc
    wrapper_environment: Mapping[str, str] = field(default_factory=dict)
