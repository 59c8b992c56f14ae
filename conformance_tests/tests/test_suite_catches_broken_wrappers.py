"""Each check fails a wrapper that breaks its rule, with a message that says what is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import broken_plugins
import numpy as np
import pytest

from ketch import start_wrapper
from ketch_conformance import (
    CHECKS,
    CheckContext,
    ConformanceFailure,
    ConformanceTarget,
    GrpcSubject,
    load_in_process,
)


def in_process_context(
    name: str, model: Path, rows: np.ndarray, device: str = "cpu"
) -> CheckContext:
    target = ConformanceTarget(
        f"broken_plugins:{name}",
        model,
        plugin_object=getattr(broken_plugins, name),
        sample_inputs={"input": rows},
        device=device,
    )
    subject = load_in_process(target)
    return CheckContext(subject, {"input": rows}, subject.signature.capabilities.tolerance, target)


@pytest.fixture(scope="module")
def sample(digit_rows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return digit_rows[0][1000:1012]


@pytest.mark.parametrize(
    ("plugin", "check", "message"),
    [
        ("reorder_rows", "rows_in_order", "outputs of a shuffled batch are not in its order"),
        ("reorder_rows", "batch_equals_singles", "differ from the same rows asked one at a time"),
        (
            "drop_row",
            "one_row_per_input",
            "a batch of 2 rows gave 1 rows of output 'probabilities'",
        ),
        ("drop_row", "signature_matches_outputs", "returned 11 rows for output 'probabilities'"),
        ("mix_rows", "rows_independent", "rows answer differently when batched with"),
        ("mix_rows", "batch_equals_singles", "differ from the same rows asked one at a time"),
        (
            "wrong_datatype",
            "signature_matches_outputs",
            "returned datatype FP32 for output 'probabilities', declared FP64",
        ),
        (
            "ignores_device",
            "impossible_device_rejected",
            "placing on 'no-such-device' succeeded; that device does not exist",
        ),
        ("crashes_on_bad_input", "bad_shape_rejected", "ketch_batch_predict raised ValueError"),
        ("vague_error", "bad_shape_rejected", "the error does not name the input: 'bad request'"),
        ("empty_batch_fails", "empty_batch", "raised ValueError: zero-size array"),
    ],
)
def test_in_process_check_fails_the_broken_wrapper(
    plugin: str, check: str, message: str, reference_model: Path, sample: np.ndarray
) -> None:
    context = in_process_context(plugin, reference_model, sample)
    with pytest.raises(ConformanceFailure, match=message):
        CHECKS[check].run(context)


@pytest.mark.parametrize(
    "plugin",
    [
        "reorder_rows",
        "drop_row",
        "mix_rows",
        "wrong_datatype",
        "ignores_device",
        "crashes_on_bad_input",
        "vague_error",
        "empty_batch_fails",
    ],
)
def test_every_broken_wrapper_fails_some_check_and_passes_the_rest(
    plugin: str, reference_model: Path, sample: np.ndarray
) -> None:
    context = in_process_context(plugin, reference_model, sample)
    failed = []
    for check in CHECKS.values():
        if "in_process" not in check.transports:
            continue
        try:
            check.run(context)
        except ConformanceFailure:
            failed.append(check.name)
    assert failed, f"{plugin} passed every in-process check"


@pytest.fixture
def grpc_context(
    request: pytest.FixtureRequest,
    reference_model: Path,
    sample: np.ndarray,
    broken_env: dict[str, str],
) -> Iterator[CheckContext]:
    name = request.param
    target = ConformanceTarget(
        f"broken_plugins:{name}", reference_model, sample_inputs={"input": sample}, env=broken_env
    )
    reference = load_in_process(
        ConformanceTarget("ketch_conformance.reference:plugin", reference_model)
    )
    signature = load_in_process(
        ConformanceTarget(
            target.plugin, reference_model, plugin_object=getattr(broken_plugins, name)
        )
    ).signature
    assert reference.signature.inputs == signature.inputs
    with start_wrapper(target.plugin, reference_model, env=broken_env) as process:
        subject = GrpcSubject(process, signature)
        yield CheckContext(subject, {"input": sample}, signature.capabilities.tolerance, target)
        subject.close()


@pytest.mark.parametrize(
    ("grpc_context", "check", "message"),
    [
        (
            "drop_row",
            "one_row_per_input",
            "INTERNAL: .* returned 1 rows for output .probabilities. from a batch of 2",
        ),
        (
            "drop_row",
            "signature_matches_outputs",
            "ModelInfer failed on a valid batch: INTERNAL: plugin 'broken_plugins:drop_row' "
            "returned 11 rows",
        ),
        ("reorder_rows", "rows_in_order", "outputs of a shuffled batch are not in its order"),
        ("mix_rows", "rows_independent", "rows answer differently when batched with"),
        (
            "ignores_device",
            "impossible_device_refused_at_start",
            "ketch serve --device no-such-device started; that device does not exist",
        ),
        ("empty_batch_fails", "empty_batch", "INTERNAL: ValueError: zero-size array"),
    ],
    indirect=["grpc_context"],
)
def test_grpc_check_fails_the_broken_wrapper(
    grpc_context: CheckContext, check: str, message: str
) -> None:
    with pytest.raises(ConformanceFailure, match=message):
        CHECKS[check].run(grpc_context)
