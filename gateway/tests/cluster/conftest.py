"""Fixtures for the multi-host tests: a bed of network namespaces and its services."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.bed_services import cluster_unavailable_reason
from cluster.netbed import NetBed
from cluster.topology import PUBLISHED, WRAPPER_HOSTS, Cluster


def _require_bed() -> None:
    """Skip where no bed can be built, unless KETCH_REQUIRE_CLUSTER is set (CI sets it),
    where that is a failure."""
    reason = cluster_unavailable_reason()
    if reason is not None:
        if os.environ.get("KETCH_REQUIRE_CLUSTER"):
            raise RuntimeError(f"the multi-host bed cannot be built: {reason}")
        pytest.skip(f"the multi-host bed cannot be built here: {reason}")


@pytest.fixture
def bed() -> Iterator[NetBed]:
    """A fresh, empty bed, torn down after the test (also when it fails)."""
    _require_bed()
    with NetBed() as made:
        yield made


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, digits_model: Path) -> Iterator[Cluster]:
    """DNS, Redis and four wrapper hosts (three of them in DNS), shared by a module's tests.

    Each test starts its own gateways (on a Redis prefix of its own) with
    :func:`fresh_cluster`, which also puts back what a test changed.
    """
    _require_bed()
    with NetBed() as made:
        built = Cluster(made, tmp_path_factory.mktemp("cluster"), digits_model)
        try:
            built.start_wrappers(WRAPPER_HOSTS)
            built.publish(PUBLISHED)
            yield built
        finally:
            built.close()


@pytest.fixture
def fresh_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """The module's cluster with no gateway, every link up and three wrappers in DNS."""
    yield cluster
    for host in cluster.bed.hosts.values():
        cluster.bed.restore(host)
    cluster.stop_gateways()
    cluster.ensure_redis()
    cluster.publish(PUBLISHED)
