"""The reference plugin passes every check, in process and over gRPC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ketch_conformance import ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc

__all__ = ["TestInProcess", "TestOverGrpc"]


@pytest.fixture(scope="module")
def ketch_target(
    reference_model: Path, digit_rows: tuple[np.ndarray, np.ndarray]
) -> ConformanceTarget:
    return ConformanceTarget(
        "ketch_conformance.reference:plugin",
        reference_model,
        sample_inputs={"input": digit_rows[0][900:916]},
        sample_labels=digit_rows[1][900:916],
    )
