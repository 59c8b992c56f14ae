"""The bytes tier: odd BYTES rows are answered or clearly refused, and never crash anything.

Applies when an input has datatype BYTES.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from ketch_conformance.checks.calls import host_form, reference_subject
from ketch_conformance.failures import ConformanceFailure, assert_outputs_equal
from ketch_conformance.registry import (
    CheckContext,
    Refused,
    answer_or_refusal,
    check,
    concatenate,
)
from ketch_conformance.samples import take_rows
from ketch_conformance.subjects import GrpcSubject

__all__ = ["LONG_ROW_BYTES", "RULES", "odd_rows"]

LONG_ROW_BYTES: Final = 64 * 1024
COMPANIONS: Final = 2


def odd_rows(base: bytes) -> dict[str, bytes]:
    """Values a BYTES row may hold that plugins often mishandle, by description."""
    long_row = (base + b" ") * (LONG_ROW_BYTES // (len(base) + 1) + 1)
    return {
        "an empty row": b"",
        "a row that is not UTF-8": b"\xff\xfe" + base + b"\xc3",
        "a row with a NUL byte inside": base + b"\x00" + base,
        "a row of 64 KiB": long_row,
        "a row of accented letters, CJK and an emoji": "naïve café 漢字 🙂".encode(),
    }


def _with_odd_row(
    context: CheckContext, name: str, value: bytes
) -> tuple[dict[str, np.ndarray], int]:
    """The odd row, then the first sample rows; how many sample rows came along."""
    companions = min(COMPANIONS, context.rows, (context.max_batch or COMPANIONS + 1) - 1)
    odd = take_rows(context.inputs, [0])
    array = np.empty(odd[name].shape, dtype=object)
    array.fill(value)
    odd[name] = array
    return concatenate(odd, take_rows(context.inputs, slice(0, companions))), companions


@check(
    "odd_bytes_handled",
    "empty, non-UTF-8, NUL-holding, 64 KiB and non-ASCII BYTES rows are answered (without "
    "changing the other rows' answers) or refused as invalid input",
    tier="bytes",
)
def check_odd_bytes_handled(context: CheckContext) -> None:
    """Each odd value in the first BYTES input, in a batch with sample rows."""
    spec = next(spec for spec in context.signature.inputs if spec.datatype == "BYTES")
    base = np.asarray(context.inputs[spec.name]).ravel()[0]
    base = base.encode() if isinstance(base, str) else bytes(base)
    companions = min(COMPANIONS, context.rows)
    expected = context.predict(take_rows(context.inputs, slice(0, companions)))
    for description, value in odd_rows(base).items():
        inputs, count = _with_odd_row(context, spec.name, value)
        what = f"input {spec.name!r} with {description}"
        outputs = answer_or_refusal(context, inputs, what)
        if isinstance(outputs, Refused):
            continue
        assert_outputs_equal(
            {name: array[:count] for name, array in expected.items()},
            {name: array[1:] for name, array in outputs.items()},
            context.tolerance,
            f"{what}: the other rows of its batch answered differently",
        )
        if isinstance(context.subject, GrpcSubject):
            reference = reference_subject(context)
            answered = host_form(reference.predict(inputs))
            assert_outputs_equal(
                {name: answered[name][:1] for name in outputs},
                {name: array[:1] for name, array in host_form(outputs).items()},
                context.tolerance,
                f"{what}: the answer over gRPC differs from the hooks' in process",
            )
    if isinstance(context.subject, GrpcSubject) and not context.subject.alive():
        raise ConformanceFailure("the wrapper process died after odd BYTES rows")


RULES: Final = (check_odd_bytes_handled,)
"""This module's checks."""
