"""The variable_shapes and max_batch tiers: every declared size is honoured.

Registered by importing :mod:`ketch_conformance.checks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from ketch import VARIABLE, Signature
from ketch_conformance.failures import ConformanceFailure, assert_outputs_equal
from ketch_conformance.registry import CheckContext, check, singles
from ketch_conformance.samples import take_rows
from ketch_conformance.subjects import GrpcSubject

__all__ = ["VARIABLE_SIZES", "resize_variable_dimensions"]

VARIABLE_SIZES: Final = (1, 2, 7)


def resize_variable_dimensions(
    signature: Signature, inputs: Mapping[str, np.ndarray], size: int
) -> dict[str, np.ndarray]:
    """The inputs with every variable dimension (besides the batch) cut or tiled to ``size``.

    Tiling repeats the row's own values, so that they stay values the model knows
    (token ids stay token ids); inputs whose variable dimensions line up keep lining up.
    """
    resized = {}
    for spec in signature.inputs:
        array = np.asarray(inputs[spec.name])
        for axis, declared in enumerate(spec.row_shape, start=1):
            if declared == VARIABLE and array.shape[axis] > 0:
                array = np.take(array, np.arange(size) % array.shape[axis], axis=axis)
        resized[spec.name] = np.ascontiguousarray(array)
    return resized


def _shapes(inputs: Mapping[str, np.ndarray]) -> str:
    return ", ".join(f"{name!r} {list(array.shape)}" for name, array in inputs.items())


@check(
    "variable_sizes_answered",
    "inputs whose variable dimensions take other sizes (1, 2, 7) are answered, each row as alone",
    tier="variable_shapes",
)
def check_variable_sizes_answered(context: CheckContext) -> None:
    """The sample with its variable dimensions resized; the batch against its rows alone."""
    for size in VARIABLE_SIZES:
        inputs = resize_variable_dimensions(context.signature, context.inputs, size)
        what = f"variable dimensions at size {size} ({_shapes(inputs)})"
        try:
            batch = context.predict(inputs)
        except ConformanceFailure as error:
            raise ConformanceFailure(f"{what}: {error}") from error
        resized = CheckContext(
            context.subject, inputs, context.tolerance, context.target, context.reference
        )
        first = list(range(min(3, context.rows)))
        assert_outputs_equal(
            singles(resized, first),
            {name: array[first] for name, array in batch.items()},
            context.tolerance,
            f"{what}: a batch answers differently from its rows asked alone",
        )


@check(
    "max_batch_honoured",
    "a batch of exactly max_batch rows is answered; one more row is refused naming the bound",
    tier="max_batch",
)
def check_max_batch_honoured(context: CheckContext) -> None:
    """max_batch rows (the sample repeated), then, over gRPC, max_batch + 1."""
    limit = context.max_batch
    assert limit is not None
    index = np.arange(limit) % context.rows
    expected = {name: array[index] for name, array in context.predict(context.inputs).items()}
    assert_outputs_equal(
        expected,
        context.predict(take_rows(context.inputs, index)),
        context.tolerance,
        f"a batch of exactly max_batch={limit} rows answers differently from the same rows in a "
        "small batch",
    )
    if isinstance(context.subject, GrpcSubject):
        over = take_rows(context.inputs, np.arange(limit + 1) % context.rows)
        message = context.subject.rejection(
            over, f"a batch of {limit + 1} rows (max_batch {limit})"
        )
        if str(limit) not in message:
            raise ConformanceFailure(
                f"refusing a batch of {limit + 1} rows, the error does not name the bound "
                f"{limit}: {message!r}"
            )
