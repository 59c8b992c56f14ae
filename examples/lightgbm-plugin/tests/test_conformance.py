"""The Ketch conformance suite on the lightgbm plugin, strictly, for each kind of model."""

from __future__ import annotations

import pytest

from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc
from ketch_lightgbm.conformance import TASKS, target_factory

__all__ = ["TestInProcess", "TestOverGrpc"]


@pytest.fixture(scope="module", params=list(TASKS))
def ketch_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ConformanceTarget:
    """A small binary classifier, a three-class classifier and a regressor."""
    task = str(request.param)
    return target_factory(task)(tmp_path_factory.mktemp(task))
