"""Fixtures for the multi-host tests: a bed of network namespaces and its services."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cluster.bed_services import cluster_unavailable_reason
from cluster.netbed import NetBed


@pytest.fixture
def bed() -> Iterator[NetBed]:
    """A fresh, empty bed, torn down after the test (also when it fails).

    Skips where no bed can be built, unless KETCH_REQUIRE_CLUSTER is set (CI sets it),
    where that is a failure.
    """
    reason = cluster_unavailable_reason()
    if reason is not None:
        if os.environ.get("KETCH_REQUIRE_CLUSTER"):
            raise RuntimeError(f"the multi-host bed cannot be built: {reason}")
        pytest.skip(f"the multi-host bed cannot be built here: {reason}")
    with NetBed() as made:
        yield made
