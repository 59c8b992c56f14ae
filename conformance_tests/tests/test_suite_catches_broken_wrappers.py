"""Each check fails a wrapper that breaks its rule, with a message that says what is wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conformance_test_support import grpc_context, in_process_context, plugin_object

from ketch import WrapperCallError
from ketch_conformance import (
    CHECKS,
    IN_PROCESS,
    CheckContext,
    CheckSkipped,
    ConformanceFailure,
    ConformanceTarget,
    GrpcSubject,
    load_in_process,
    not_applicable,
)
from ketch_conformance.reference import plugin

LABELLED = {"labelled": True}


@pytest.fixture(scope="module")
def sample(digit_rows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return digit_rows[0][1000:1012]


@pytest.fixture(scope="module")
def sample_labels(digit_rows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return digit_rows[1][1000:1012]


def _release(reference: str) -> None:
    """End what a leaking test plugin left in this process."""
    release = getattr(plugin_object(reference), "release", None)
    if callable(release):
        release()


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
        ("nondeterministic", "repeatable", "call 2 with the same batch answered differently"),
        (
            "not_thread_safe",
            "concurrent_clients",
            r"32 clients at once \(in process\): client \d+, call \d got another answer than the "
            r"same batch asked alone \(is ketch_batch_predict thread-safe\?\)",
        ),
        ("writes_inputs", "inputs_not_modified", "changed its input 'input' in place"),
        (
            "reuses_outputs",
            "outputs_not_reused",
            "output 'probabilities' of one call changed when the next call ran",
        ),
        (
            "truncates_large_batches",
            "large_batch",
            r"a batch of 1000 rows \(no declared bound\) answers differently",
        ),
    ],
)
def test_in_process_check_fails_the_broken_wrapper(
    plugin: str, check: str, message: str, reference_model: Path, sample: np.ndarray
) -> None:
    context = in_process_context(f"broken_plugins:{plugin}", reference_model, {"input": sample})
    with pytest.raises(ConformanceFailure, match=message):
        CHECKS[check].run(context)


@pytest.mark.parametrize(
    ("plugin", "check", "message"),
    [
        ("leaks_threads", "no_resource_growth", r"this process .* leaks: threads grew from"),
        ("leaks_files", "no_resource_growth", r"this process .* leaks: open files grew from"),
        (
            "observe_does_nothing",
            "observe_moves_toward_labels",
            "observe does not move predictions toward the labels .nothing changed, though "
            "ketch_observe said changed=True.",
        ),
        (
            "observe_moves_away",
            "observe_moves_toward_labels",
            r"after observing the 12 labelled sample rows 10 times, their prediction error went "
            r"from \S+ to \S+: observe does not move predictions toward the labels \(it moved away",
        ),
    ],
)
def test_in_process_check_fails_the_broken_lifecycle(
    plugin: str, check: str, message: str, reference_model: Path, sample: np.ndarray
) -> None:
    reference = f"conformance_lifecycle_plugins:{plugin}"
    labels = np.arange(len(sample)) % 10
    context = in_process_context(
        reference, reference_model, {"input": sample}, sample_labels=labels
    )
    try:
        with pytest.raises(ConformanceFailure, match=message):
            CHECKS[check].run(context)
    finally:
        _release(reference)


def test_observe_without_labels_is_a_skip(reference_model: Path, sample: np.ndarray) -> None:
    context = in_process_context(
        "ketch_conformance.reference:plugin", reference_model, {"input": sample}
    )
    with pytest.raises(
        CheckSkipped,
        match=r"the target gives no labels to learn from: pass a labels file \(ketch conformance "
        r"--labels FILE, or pytest --ketch-labels FILE\) or set ConformanceTarget.sample_labels",
    ):
        CHECKS["observe_moves_toward_labels"].run(context)


@pytest.mark.parametrize(
    "plugin",
    [
        "broken_plugins:reorder_rows",
        "broken_plugins:drop_row",
        "broken_plugins:mix_rows",
        "broken_plugins:wrong_datatype",
        "broken_plugins:ignores_device",
        "broken_plugins:crashes_on_bad_input",
        "broken_plugins:vague_error",
        "broken_plugins:empty_batch_fails",
        "broken_plugins:nondeterministic",
        "broken_plugins:writes_inputs",
        "broken_plugins:reuses_outputs",
        "broken_plugins:truncates_large_batches",
        "conformance_lifecycle_plugins:observe_does_nothing",
        "conformance_lifecycle_plugins:observe_moves_away",
    ],
)
def test_every_broken_wrapper_fails_some_check(
    plugin: str, reference_model: Path, sample: np.ndarray, sample_labels: np.ndarray
) -> None:
    context = in_process_context(
        plugin, reference_model, {"input": sample}, sample_labels=sample_labels
    )
    failed = []
    for check in CHECKS.values():
        if IN_PROCESS not in check.transports or not_applicable(check, context.signature):
            continue
        try:
            check.run(context)
        except ConformanceFailure:
            failed.append(check.name)
    assert failed, f"{plugin} passed every in-process check"


@pytest.fixture
def broken_grpc(
    request: pytest.FixtureRequest,
    reference_model: Path,
    sample: np.ndarray,
    sample_labels: np.ndarray,
) -> Iterator[CheckContext]:
    """A wrapper for the broken plugin ``request.param``: ``(reference, target fields)``."""
    reference, fields = request.param
    fields = dict(fields)
    labelled = fields.pop("labelled", False)
    settle = fields.pop("settle", False)
    settings: dict[str, Any] = {}
    if "conformance_lifecycle_plugins" in reference:
        # loading these in this process would start their threads here: ask the reference
        reference_target = ConformanceTarget("reference", reference_model, plugin_object=plugin)
        settings["signature"] = load_in_process(reference_target).signature
        settings["stop_timeout"] = 2.0
    with grpc_context(
        reference,
        reference_model,
        {"input": sample},
        sample_labels=sample_labels if labelled else None,
        **settings,
        **fields,
    ) as context:
        if settle:
            _settle(context)
        yield context


def _settle(context: CheckContext) -> None:
    """Wait until the wrapper answers (a plugin that loads in the background may not yet)."""
    assert isinstance(context.subject, GrpcSubject)
    client = context.subject.client
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        try:
            client.infer(context.inputs)
            return
        except WrapperCallError:
            time.sleep(0.1)


@pytest.mark.parametrize(
    ("broken_grpc", "check", "message"),
    [
        (
            ("broken_plugins:drop_row", {}),
            "one_row_per_input",
            "INTERNAL: .* returned 1 rows for output .probabilities. from a batch of 2",
        ),
        (
            ("broken_plugins:drop_row", {}),
            "signature_matches_outputs",
            "ModelInfer failed on a valid batch: INTERNAL: plugin 'broken_plugins:drop_row' "
            "returned 11 rows",
        ),
        (
            ("broken_plugins:reorder_rows", {}),
            "rows_in_order",
            "outputs of a shuffled batch are not in its order",
        ),
        (
            ("broken_plugins:mix_rows", {}),
            "rows_independent",
            "rows answer differently when batched with",
        ),
        (
            ("broken_plugins:ignores_device", {}),
            "impossible_device_refused_at_start",
            "ketch serve --device no-such-device started; that device does not exist",
        ),
        (
            ("broken_plugins:empty_batch_fails", {}),
            "empty_batch",
            "INTERNAL: ValueError: zero-size array",
        ),
        (
            ("broken_plugins:not_thread_safe", {}),
            "concurrent_clients",
            r"32 clients at once \(over gRPC\): client \d+, call \d got another answer",
        ),
        (
            ("broken_plugins:thread_local_settings", {}),
            "wire_matches_hooks",
            "the answers over gRPC differ from ketch_batch_predict's in process",
        ),
        (
            ("conformance_lifecycle_plugins:leaks_threads", {}),
            "no_resource_growth",
            r"the wrapper process \(ketch serve\) leaks: threads grew from",
        ),
        (
            ("conformance_lifecycle_plugins:leaks_files", {}),
            "no_resource_growth",
            r"the wrapper process \(ketch serve\) leaks: open files grew from",
        ),
        (
            ("conformance_lifecycle_plugins:ready_too_early", {"settle": True}),
            "ready_only_when_answering",
            r"the wrapper reported ready \(ServerReady=True.*\), but ModelInfer then failed: "
            "INTERNAL: RuntimeError: the model is still loading",
        ),
        (
            ("conformance_lifecycle_plugins:hangs_on_sigterm", {"shutdown_timeout": 3.0}),
            "sigterm_finishes_calls",
            r"the wrapper had not exited 4 s after SIGTERM, though its calls in flight took 1 s: "
            r"something keeps it alive \(a thread that is not a daemon",
        ),
        (
            (
                "conformance_lifecycle_plugins:drops_calls_on_sigterm",
                {"options": {"own_sigterm_handler": "yes"}},
            ),
            "sigterm_finishes_calls",
            "call 1 of 3, in flight when SIGTERM arrived, failed: UNAVAILABLE",
        ),
        (
            ("conformance_lifecycle_plugins:observe_moves_away", LABELLED),
            "observe_moves_toward_labels",
            r"observe does not move predictions toward the labels \(it moved away",
        ),
    ],
    indirect=["broken_grpc"],
)
def test_grpc_check_fails_the_broken_wrapper(
    broken_grpc: CheckContext, check: str, message: str
) -> None:
    with pytest.raises(ConformanceFailure, match=message):
        CHECKS[check].run(broken_grpc)
