"""The optional tiers: each applies when its capability is declared, passes a wrapper that
keeps it, and fails one that breaks it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conformance_capability_plugins import FEATURES
from conformance_test_support import TEST_PLUGINS_ENV, grpc_context, in_process_context

from ketch_conformance import CHECKS, CheckSkipped, ConformanceFailure, ConformanceTarget
from ketch_conformance.suite import TestInProcess, TestOverGrpc

__all__ = ["TestInProcess", "TestOverGrpc"]

SENTENCES = (
    "the quick brown fox",
    "jumps over the lazy dog",
    "a model serves answers",
    "batches of rows arrive",
    "seven",
    "latency matters to every caller of the service",
    "green river stone",
    "light paper wind harbour sail",
    "query",
    "answer the query fast",
    "the cache remembers",
    "ketch",
)


def text_rows() -> np.ndarray:
    rows = np.empty(len(SENTENCES), dtype=object)
    rows[:] = [sentence.encode() for sentence in SENTENCES]
    return rows


def sequences(digits: np.ndarray) -> np.ndarray:
    """Twelve sequences of three digit rows each."""
    return digits[:36].reshape(12, 3, FEATURES)


@pytest.fixture(
    scope="module",
    params=[
        "hashed_text",
        "pooled_sequence",
        "bounded_batch",
        "emulated_accelerator",
        "persisting",
    ],
)
def ketch_target(
    request: pytest.FixtureRequest,
    reference_model: Path,
    digit_rows: tuple[np.ndarray, np.ndarray],
    tmp_path_factory: pytest.TempPathFactory,
) -> ConformanceTarget:
    """Each plugin that declares an optional capability, on a model of its own."""
    name = str(request.param)
    folder = tmp_path_factory.mktemp(name)
    model = folder / reference_model.name
    model.write_bytes(reference_model.read_bytes())
    rows, labels = digit_rows[0][1100:1116], digit_rows[1][1100:1116]
    inputs = {"input": rows}
    if name == "hashed_text":
        inputs = {"text": text_rows()}
    elif name == "pooled_sequence":
        inputs = {"steps": sequences(digit_rows[0][1100:])}
    return ConformanceTarget(
        f"conformance_capability_plugins:{name}",
        model,
        sample_inputs=inputs,
        sample_labels=labels[: len(next(iter(inputs.values())))],
        env=TEST_PLUGINS_ENV,
    )


@pytest.mark.parametrize(
    ("plugin", "check", "message"),
    [
        (
            "crashes_on_non_utf8",
            "odd_bytes_handled",
            "input 'text' with a row that is not UTF-8: ketch_batch_predict raised "
            "UnicodeDecodeError",
        ),
        (
            "fixed_length_sequence",
            "variable_sizes_answered",
            r"no size of the variable dimensions besides the sample's own "
            r"\('steps' \[12, 3, 64\]\) was answered: "
            r"'steps' \[12, 1, 64\]: input 'steps': expected 3 steps, got 1; .*"
            r"'steps' \[12, 6, 64\]: input 'steps': expected 3 steps, got 6; "
            r"'steps' \[12, 7, 64\]: input 'steps': expected 3 steps, got 7",
        ),
        (
            "off_by_one_batch",
            "max_batch_honoured",
            "ketch_batch_predict raised InvalidInputError: a batch holds fewer than 8 rows",
        ),
        (
            "low_precision_accelerator",
            "devices_match_cpu",
            r"on 'emulated' the answers differ from the CPU's: output 'probabilities' differs",
        ),
    ],
)
def test_tier_check_fails_the_broken_wrapper(
    plugin: str, check: str, message: str, reference_model: Path, digits: np.ndarray
) -> None:
    sample = {
        "crashes_on_non_utf8": {"text": text_rows()},
        "fixed_length_sequence": {"steps": sequences(digits)},
    }.get(plugin, {"input": digits[:8]})
    context = in_process_context(
        f"conformance_capability_plugins:{plugin}", reference_model, sample
    )
    with pytest.raises(ConformanceFailure, match=message):
        CHECKS[check].run(context)


@pytest.fixture(scope="module")
def digits(digit_rows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return digit_rows[0][1100:]


def test_a_declared_device_this_machine_lacks_is_a_skip(
    reference_model: Path, digit_rows: tuple[np.ndarray, np.ndarray]
) -> None:
    context = in_process_context(
        "conformance_capability_plugins:missing_accelerator",
        reference_model,
        {"input": digit_rows[0][:8]},
    )
    with pytest.raises(
        CheckSkipped,
        match=r"declared devices are not available on this machine: device 'cuda:0' is not "
        r"available",
    ):
        CHECKS["devices_match_cpu"].run(context)


@pytest.mark.parametrize(
    ("plugin", "check", "message"),
    [
        ("crashes_on_non_utf8", "odd_bytes_handled", "ModelInfer answered INTERNAL: "),
        (
            "forgets_on_restart",
            "observe_survives_restart",
            "after SIGTERM and a restart on the same model, the wrapper does not answer as it "
            "did when it stopped",
        ),
    ],
)
def test_grpc_tier_check_fails_the_broken_wrapper(
    plugin: str,
    check: str,
    message: str,
    reference_model: Path,
    digit_rows: tuple[np.ndarray, np.ndarray],
) -> None:
    inputs = {"text": text_rows()} if "utf8" in plugin else {"input": digit_rows[0][:12]}
    with (
        grpc_context(
            f"conformance_capability_plugins:{plugin}",
            reference_model,
            inputs,
            sample_labels=digit_rows[1][:12],
        ) as context,
        pytest.raises(ConformanceFailure, match=message),
    ):
        CHECKS[check].run(context)
