"""The variable_shapes and max_batch tiers: every declared size is honoured.

A variable dimension (``-1``) need not take every size: a model exported for a
range of sizes (``TensorSpec.ranges``) refuses the others, and one dimension may
be tied to another (``2 * seq``). So the sizes tried are derived from the
sample's own (which the plugin chose, when it gives ``ketch_example_inputs``):
each is answered or clearly refused, and at least one besides the sample's own
must be answered. Doubling every size keeps dimensions tied in proportion tied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import numpy as np

from ketch import VARIABLE, Signature
from ketch_conformance.failures import ConformanceFailure, assert_outputs_equal
from ketch_conformance.registry import CheckContext, Refused, answer_or_refusal, check, singles
from ketch_conformance.samples import take_rows
from ketch_conformance.subjects import GrpcSubject

__all__ = ["RULES", "SIZE_VARIANTS", "resize_variable_dimensions", "size_variants"]

SizeRule = Callable[[int], int]
SIZE_VARIANTS: Final[tuple[tuple[str, SizeRule], ...]] = (
    ("1", lambda size: 1),
    ("one less", lambda size: size - 1),
    ("one more", lambda size: size + 1),
    ("twice", lambda size: 2 * size),
    ("twice, plus one", lambda size: 2 * size + 1),
)
"""How each variable dimension's size is varied from the sample's own size ``s``:
1, ``s - 1``, ``s + 1``, ``2s`` and ``2s + 1`` (the random sample's 3: 1, 2, 4, 6, 7)."""


def _variable_axes(signature: Signature) -> dict[str, list[int]]:
    return {
        spec.name: [axis for axis, size in enumerate(spec.row_shape, start=1) if size == VARIABLE]
        for spec in signature.inputs
    }


def resize_variable_dimensions(
    signature: Signature, inputs: Mapping[str, np.ndarray], rule: SizeRule
) -> dict[str, np.ndarray]:
    """The inputs with each variable dimension (besides the batch) cut or tiled to ``rule(s)``.

    ``s`` is the dimension's size in ``inputs``; a size ``rule`` makes below 1 keeps
    ``s``. Tiling repeats the row's own values, so that they stay values the model
    knows (token ids stay token ids); dimensions of one size keep one size.
    """
    resized = {}
    for name, axes in _variable_axes(signature).items():
        array = np.asarray(inputs[name])
        for axis in axes:
            size = array.shape[axis]
            wanted = rule(size)
            if size > 0 and wanted > 0:
                array = np.take(array, np.arange(wanted) % size, axis=axis)
        resized[name] = np.ascontiguousarray(array)
    return resized


def size_variants(
    signature: Signature, inputs: Mapping[str, np.ndarray]
) -> list[dict[str, np.ndarray]]:
    """The sample resized by each of :data:`SIZE_VARIANTS`, leaving out repeats and itself."""
    seen = {tuple(np.asarray(array).shape for array in inputs.values())}
    variants = []
    for _, rule in SIZE_VARIANTS:
        resized = resize_variable_dimensions(signature, inputs, rule)
        shapes = tuple(array.shape for array in resized.values())
        if shapes not in seen:
            seen.add(shapes)
            variants.append(resized)
    return variants


def _shapes(inputs: Mapping[str, np.ndarray]) -> str:
    return ", ".join(f"{name!r} {list(array.shape)}" for name, array in inputs.items())


@check(
    "variable_sizes_answered",
    "variable dimensions at other sizes than the sample's (1, s - 1, s + 1, 2s, 2s + 1) are "
    "answered, each row as alone, or refused as invalid input naming the input; at least one "
    "is answered",
    tier="variable_shapes",
)
def check_variable_sizes_answered(context: CheckContext) -> None:
    """The sample with its variable dimensions resized; each batch against its rows alone."""
    refusals = []
    answered = 0
    names = [spec.name for spec in context.signature.inputs]
    for inputs in size_variants(context.signature, context.inputs):
        what = f"variable dimensions at {_shapes(inputs)}"
        batch = answer_or_refusal(context, inputs, what)
        if isinstance(batch, Refused):
            if not any(name in batch.message for name in names):
                raise ConformanceFailure(
                    f"{what}: refused without naming the input: {batch.message!r}"
                )
            refusals.append(f"{_shapes(inputs)}: {batch.message}")
            continue
        answered += 1
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
    if not answered:
        raise ConformanceFailure(
            f"no size of the variable dimensions besides the sample's own "
            f"({_shapes(context.inputs)}) was answered: " + "; ".join(refusals)
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


RULES: Final = (check_variable_sizes_answered, check_max_batch_honoured)
"""This module's checks, in the order the suite runs them."""
