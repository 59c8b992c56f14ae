"""What a check raises (a failure, or a skip), and output comparison with a declared tolerance."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ketch import Tolerance

__all__ = ["CheckSkipped", "ConformanceFailure", "assert_outputs_equal"]


class ConformanceFailure(AssertionError):
    """A wrapper broke a rule of the contract; the message says which and how."""


class CheckSkipped(Exception):
    """A check applies to the wrapper but cannot run here; the message says why.

    The suite reports it as a skip, or, in strict mode, as a failure.
    """


def _row_differs(expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance) -> np.ndarray:
    """A boolean per row: whether that row differs beyond the tolerance."""
    rows = expected.shape[0]
    if expected.dtype.kind in "fc":
        close = np.isclose(
            actual.astype(np.float64),
            expected.astype(np.float64),
            rtol=tolerance.rtol,
            atol=tolerance.atol,
            equal_nan=True,
        )
    else:
        close = actual == expected
    all_close = np.asarray(close).reshape(rows, -1).all(axis=1)
    return np.logical_not(all_close)


def assert_outputs_equal(
    expected: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    tolerance: Tolerance,
    what: str,
) -> None:
    """ConformanceFailure naming the first output and row where ``actual`` departs.

    Floating-point outputs compare within ``tolerance``; integers, booleans and
    bytes compare exactly.
    """
    for name, expected_array in expected.items():
        if name not in actual:
            raise ConformanceFailure(f"{what}: output {name!r} is missing")
        got = np.asarray(actual[name])
        want = np.asarray(expected_array)
        if got.shape != want.shape:
            raise ConformanceFailure(
                f"{what}: output {name!r} has shape {list(got.shape)}, expected {list(want.shape)}"
            )
        if want.shape[0] == 0:
            continue
        differing = np.flatnonzero(_row_differs(want, got, tolerance))
        if differing.size:
            row = int(differing[0])
            raise ConformanceFailure(
                f"{what}: output {name!r} differs in {differing.size} of {want.shape[0]} rows; "
                f"row {row} is {got[row]!r}, expected {want[row]!r} (tolerance rtol="
                f"{tolerance.rtol}, atol={tolerance.atol})"
            )
