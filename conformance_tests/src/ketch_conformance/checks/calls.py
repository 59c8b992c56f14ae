"""Core rules about calls: repeatable, large batches, inputs and outputs left alone, the wire."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from ketch_conformance.failures import ConformanceFailure, assert_outputs_equal
from ketch_conformance.registry import (
    IN_PROCESS,
    OVER_GRPC,
    CheckContext,
    check,
    grpc_subject,
    in_process_subject,
)
from ketch_conformance.samples import take_rows
from ketch_conformance.subjects import InProcessSubject, load_in_process

__all__ = ["LARGE_BATCH", "REPEATS", "RULES", "host_form", "large_batch_size", "reference_subject"]

LARGE_BATCH: Final = 1000
REPEATS: Final = 3


def large_batch_size(context: CheckContext) -> int:
    """The rows of the largest batch the suite sends: ``max_batch``, else :data:`LARGE_BATCH`."""
    return context.max_batch or LARGE_BATCH


def _same_array(left: np.ndarray, right: np.ndarray) -> bool:
    if left.shape != right.shape or left.dtype != right.dtype:
        return False
    if left.dtype.kind in "fc":
        return bool(np.array_equal(left, right, equal_nan=True))
    return bool(np.array_equal(left, right))


@check("repeatable", "asking the same batch again gives the same answers, within the tolerance")
def check_repeatable(context: CheckContext) -> None:
    """The sample, asked :data:`REPEATS` times."""
    first = context.predict(context.inputs)
    for attempt in range(2, REPEATS + 1):
        assert_outputs_equal(
            first,
            context.predict(context.inputs),
            context.tolerance,
            f"call {attempt} with the same batch answered differently from call 1",
        )


@check(
    "large_batch",
    f"a batch of max_batch rows ({LARGE_BATCH} when there is no bound) answers every row",
)
def check_large_batch(context: CheckContext) -> None:
    """The sample repeated up to the largest batch, against the sample's own answers."""
    size = large_batch_size(context)
    index = np.arange(size) % context.rows
    expected = {name: array[index] for name, array in context.predict(context.inputs).items()}
    bound = "the declared max_batch" if context.max_batch else "no declared bound"
    assert_outputs_equal(
        expected,
        context.predict(take_rows(context.inputs, index)),
        context.tolerance,
        f"a batch of {size} rows ({bound}) answers differently from the same rows in a small batch",
    )


@check(
    "inputs_not_modified",
    "ketch_batch_predict leaves its input arrays as they were",
    transports=(IN_PROCESS,),
)
def check_inputs_not_modified(context: CheckContext) -> None:
    """Writable copies of the sample, compared with the sample after the call.

    Every other in-process check passes read-only views, as the wire does, so a plugin
    that writes to its inputs fails those with the error numpy raises.
    """
    given = in_process_subject(context).inputs_after_call(context.inputs)
    for name, array in given.items():
        if not _same_array(array, np.asarray(context.inputs[name])):
            raise ConformanceFailure(
                f"ketch_batch_predict changed its input {name!r} in place; inputs from the wire "
                "are read-only: copy an input before writing to it"
            )


@check(
    "outputs_not_reused",
    "the arrays one call returns do not change when the next call runs",
    transports=(IN_PROCESS,),
)
def check_outputs_not_reused(context: CheckContext) -> None:
    """The first half of the sample, kept, then the second half."""
    half = max(context.rows // 2, 1)
    first = take_rows(context.inputs, slice(0, half))
    second = take_rows(context.inputs, list(range(context.rows - 1, half - 1, -1))[:half])
    snapshot, later = in_process_subject(context).outputs_across_calls(first, second)
    for name, array in later.items():
        if not _same_array(array, snapshot[name]):
            raise ConformanceFailure(
                f"output {name!r} of one call changed when the next call ran: "
                "ketch_batch_predict returns a buffer it reuses; return a fresh array per call"
            )


def host_form(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs as they travel: ``str`` elements of BYTES outputs become UTF-8 bytes."""
    converted = {}
    for name, given in outputs.items():
        array = np.asarray(given)
        if array.dtype.kind in "OU":
            flat = [value.encode() if isinstance(value, str) else value for value in array.ravel()]
            encoded = np.empty(len(flat), dtype=object)
            encoded[:] = flat
            array = encoded.reshape(array.shape)
        converted[name] = array
    return converted


def reference_subject(context: CheckContext) -> InProcessSubject:
    """The target loaded in this process: the context's, or one loaded once per subject."""
    if context.reference is not None:
        return context.reference
    return context.subject.memo.get("reference", lambda: load_in_process(context.target))


@check(
    "wire_matches_hooks",
    "answers over gRPC equal the hooks' own answers, within the tolerance",
    transports=(OVER_GRPC,),
)
def check_wire_matches_hooks(context: CheckContext) -> None:
    """The sample through ``ketch serve``, against the hooks called in this process."""
    grpc_subject(context)
    reference = reference_subject(context)
    assert_outputs_equal(
        host_form(reference.predict(context.inputs)),
        host_form(context.predict(context.inputs)),
        context.tolerance,
        "the answers over gRPC differ from ketch_batch_predict's in process (an encoding "
        "or a placement that the wire changes)",
    )


RULES: Final = (
    check_repeatable,
    check_large_batch,
    check_inputs_not_modified,
    check_outputs_not_reused,
    check_wire_matches_hooks,
)
"""This module's checks, in the order the suite runs them."""
