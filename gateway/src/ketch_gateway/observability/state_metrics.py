"""Metrics read from the gateway's state at each scrape, rather than counted as it goes.

Each app's latency objective (what the dashboards draw p99 against), whether
each replica is in rotation, and which version of each model is current: all
are facts of the configuration and the replica sets, so they are read when
Prometheus asks and are never stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ketch_gateway.gateway import Gateway

__all__ = ["GatewayStateCollector"]


class GatewayStateCollector(Collector):
    """Objectives, replicas in rotation and current versions, as gauges read at each scrape."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families' names, without reading the gateway (it may still be under way)."""
        yield GaugeMetricFamily("ketch_app_latency_objective_seconds", "", labels=["app"])
        yield GaugeMetricFamily("ketch_replica_healthy", "", labels=["model", "version", "replica"])
        yield GaugeMetricFamily("ketch_model_version_current", "", labels=["model", "version"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges, as the gateway stands now."""
        objective = GaugeMetricFamily(
            "ketch_app_latency_objective_seconds",
            "Each app's latency objective.",
            labels=["app"],
        )
        for app in list(self.gateway.apps.values()):
            objective.add_metric([app.name], app.objective_s)
        healthy = GaugeMetricFamily(
            "ketch_replica_healthy",
            "1 while a replica is in rotation (it answers), 0 while it is probed.",
            labels=["model", "version", "replica"],
        )
        current = GaugeMetricFamily(
            "ketch_model_version_current",
            "1 for the version a model answers with when a request names none, else 0.",
            labels=["model", "version"],
        )
        for model in list(self.gateway.models.values()):
            for version in list(model.versions.values()):
                is_current = float(version.version == model.current)
                current.add_metric([model.name, version.version], is_current)
                for replica in list(version.replicas.replicas):
                    healthy.add_metric(
                        [model.name, version.version, replica.address], float(replica.healthy)
                    )
        yield objective
        yield healthy
        yield current
