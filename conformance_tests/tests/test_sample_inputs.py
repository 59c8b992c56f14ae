"""The rows a run predicts: the target's own, the plugin's (``ketch_example_inputs``), or random.

Files of rows load without unpickling (text as unicode arrays, JSON, JSON lines);
a problem with the run's own rows is a usage error of the run, never a failure of
the plugin; a model that refuses random rows passes strictly once its plugin gives
rows of its own, and says what to do when it gives none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conformance_example_plugins import EXAMPLE_STEPS, TAG
from conformance_test_support import ketch

from ketch import DimensionRange, Signature, TensorSpec
from ketch_conformance import ConformanceFailure, ConformanceTarget, load_in_process
from ketch_conformance.sample_inputs import (
    RANDOM,
    SampleInputsError,
    choose_sample_inputs,
    fit_inputs,
    read_inputs_file,
    read_labels_file,
)
from ketch_conformance.samples import random_inputs

TEXTS = [f"|f sail wind {word}" for word in ("harbour", "stone", "river", "light", "query")]
TEXT_SIGNATURE = Signature(
    (TensorSpec("text", "BYTES", (-1,)),), (TensorSpec("label", "INT64", (-1,)),)
)
QUIET = ("-p", "no:cacheprovider")


def _write_rows(folder: Path, suffix: str, column: str = "text") -> Path:
    path = folder / f"rows{suffix}"
    if suffix == ".npz":
        np.savez(path, allow_pickle=False, **{column: np.array(TEXTS)})
    elif suffix == ".json":
        path.write_text(json.dumps({column: TEXTS}), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps({column: text}) + "\n" for text in TEXTS))
    return path


@pytest.mark.parametrize("suffix", [".npz", ".json", ".jsonl"])
def test_text_rows_load_from_each_format_as_bytes(tmp_path: Path, suffix: str) -> None:
    given = read_inputs_file(_write_rows(tmp_path, suffix))
    fitted = fit_inputs(given, TEXT_SIGNATURE, "rows")
    assert fitted["text"].dtype == object
    assert fitted["text"].tolist() == [text.encode() for text in TEXTS]


def test_an_object_array_is_refused_without_unpickling_it(tmp_path: Path) -> None:
    rows = np.empty(4, dtype=object)
    rows[:] = [text.encode() for text in TEXTS[:4]]
    np.savez(tmp_path / "rows.npz", text=rows)
    with pytest.raises(
        SampleInputsError,
        match=r"rows.npz: input 'text' is an object array, which numpy loads only by "
        r"unpickling \(and unpickling can run code, so the suite refuses it\): save text as a "
        r"unicode array",
    ):
        read_inputs_file(tmp_path / "rows.npz")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"example": np.array(TEXTS)},
            r"^rows: no input named 'example'; input 'text' is missing \(the model's inputs are "
            r"'text'\)$",
        ),
        ({"text": np.arange(5.0)}, r"^rows: input 'text' holds float64 values; the model"),
    ],
)
def test_rows_that_do_not_fit_the_signature_say_how(
    given: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(SampleInputsError, match=message):
        fit_inputs(given, TEXT_SIGNATURE, "rows")


def test_numbers_take_the_declared_datatype_and_refuse_what_does_not_fit() -> None:
    signature = Signature(
        (TensorSpec("x", "FP32", (-1, 2)), TensorSpec("n", "INT64", (-1,))),
        (TensorSpec("y", "FP32", (-1,)),),
    )
    fitted = fit_inputs({"x": np.ones((4, 2)), "n": np.arange(4, dtype=np.int32)}, signature, "r")
    assert (fitted["x"].dtype, fitted["n"].dtype) == (np.dtype(np.float32), np.dtype(np.int64))
    with pytest.raises(SampleInputsError, match="input 'n' holds float64 values, which do not fit"):
        fit_inputs({"x": np.ones((4, 2)), "n": np.ones(4)}, signature, "r")
    with pytest.raises(SampleInputsError, match=r"input 'x' has shape \[4, 3\]; the model"):
        fit_inputs({"x": np.ones((4, 3)), "n": np.arange(4)}, signature, "r")


def test_labels_load_from_npy_and_json_but_not_from_object_arrays(tmp_path: Path) -> None:
    np.save(tmp_path / "labels.npy", np.arange(5))
    (tmp_path / "labels.json").write_text("[0, 1, 2, 3, 4]")
    assert read_labels_file(tmp_path / "labels.json").tolist() == [0, 1, 2, 3, 4]
    assert read_labels_file(tmp_path / "labels.npy").tolist() == [0, 1, 2, 3, 4]
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}]), allow_pickle=True)
    with pytest.raises(SampleInputsError, match="the labels are an object array"):
        read_labels_file(tmp_path / "objects.npy")


def test_random_rows_keep_variable_dimensions_inside_their_declared_ranges() -> None:
    image = TensorSpec(
        "image",
        "FP32",
        (-1, 3, -1, -1),
        (None, None, DimensionRange(16, 512), DimensionRange(1, 2)),
    )
    steps = TensorSpec("steps", "INT64", (-1, -1))
    signature = Signature((image, steps), (TensorSpec("y", "FP32", (-1,)),))
    inputs = random_inputs(signature)
    assert (inputs["image"].shape, inputs["steps"].shape) == ((12, 3, 16, 2), (12, 3))


def test_the_target_rows_come_first_then_the_plugins_then_random_ones(
    reference_model: Path, digit_rows: tuple[np.ndarray, np.ndarray]
) -> None:
    tagged = load_in_process(
        ConformanceTarget("conformance_example_plugins:tagged_text", reference_model)
    )
    given = {"text": np.array(TEXTS)}
    inputs, source = choose_sample_inputs(given, tagged, "the target's rows")
    assert (source, inputs["text"][0]) == ("the target's rows", TEXTS[0].encode())
    inputs, source = choose_sample_inputs(None, tagged, "unused")
    assert source == "the plugin's ketch_example_inputs"
    assert all(row.startswith(TAG) for row in inputs["text"])
    bounded = load_in_process(
        ConformanceTarget("conformance_example_plugins:bounded_sequence", reference_model)
    )
    assert choose_sample_inputs(None, bounded, "unused")[0]["steps"].shape[1] == EXAMPLE_STEPS
    reference = load_in_process(
        ConformanceTarget("ketch_conformance.reference:plugin", reference_model)
    )
    assert choose_sample_inputs(None, reference, "unused")[1] == RANDOM


def test_example_rows_that_do_not_fit_the_signature_are_the_plugins_fault(
    reference_model: Path,
) -> None:
    subject = load_in_process(
        ConformanceTarget("conformance_example_plugins:wrong_examples", reference_model)
    )
    with pytest.raises(
        ConformanceFailure,
        match="ketch_example_inputs returned rows that do not fit the model's signature: input "
        "'input': expected datatype FP32, got FP64",
    ):
        choose_sample_inputs(None, subject, "unused")


@pytest.mark.parametrize("plugin", ["tagged_text", "bounded_sequence"])
def test_a_model_that_refuses_random_rows_passes_strictly_with_its_plugins_rows(
    tmp_path: Path, reference_model: Path, plugin: str
) -> None:
    result = ketch(
        "conformance", f"conformance_example_plugins:{plugin}", str(reference_model), "--strict",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("checks (strict): the plugin conforms")


def test_without_rows_of_its_own_the_run_says_where_rows_come_from(
    tmp_path: Path, reference_model: Path
) -> None:
    plugin = "conformance_example_plugins:tagged_text_without_examples"
    result = ketch("conformance", plugin, str(reference_model), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        "ketch conformance: the model refuses the random rows made from the signature as invalid "
        "input (input 'text' row 0 is not an example ('|f word ...'): b'" in result.stdout
    )
    assert "give sample rows: a file of rows (ketch conformance --inputs FILE" in result.stdout
    assert "failed:" not in result.stdout
    rows = _write_rows(tmp_path, ".jsonl")
    result = ketch(
        "conformance", plugin, str(reference_model), "--inputs", rows.name, "--strict",
        "-k", "rows_in_order or odd_bytes_handled",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _write_object_array(folder: Path) -> Path:
    rows = np.empty(4, dtype=object)
    rows[:] = [TAG + b"a"] * 4
    np.savez(folder / "rows.npz", text=rows)
    return folder / "rows.npz"


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            lambda folder: _write_rows(folder, ".json", column="example"),
            "ketch conformance: the inputs file {path}: no input named 'example'; input 'text' "
            "is missing (the model's inputs are 'text')",
        ),
        (_write_object_array, "ketch conformance: {path}: input 'text' is an object array"),
    ],
    ids=["wrong-names", "object-array"],
)
def test_the_runs_own_rows_at_fault_are_a_usage_error_not_the_plugins_failure(
    tmp_path: Path, reference_model: Path, write: Callable[[Path], Path], message: str
) -> None:
    path = write(tmp_path).resolve()
    result = ketch(
        "conformance", "conformance_example_plugins:tagged_text", str(reference_model),
        "--inputs", str(path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert message.format(path=path) in result.stdout
    assert "failed:" not in result.stdout
    assert "tier" not in result.stdout


def test_pytest_stops_with_a_usage_error_for_labels_that_do_not_fit(
    pytester: pytest.Pytester, reference_model: Path, digit_rows: tuple[np.ndarray, np.ndarray]
) -> None:
    np.savez(pytester.path / "rows.npz", input=digit_rows[0][:8])
    np.save(pytester.path / "labels.npy", digit_rows[1][:3])
    result = pytester.runpytest_subprocess(
        *QUIET, "--ketch-plugin", "ketch_conformance.reference:plugin",
        f"--ketch-model={reference_model}", "--ketch-inputs", "rows.npz",
        "--ketch-labels", "labels.npy", "-k", "TestInProcess",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*the labels file labels.npy has 3 labels for 8 rows*"])
    assert "passed" not in result.stdout.str()
    assert "failed" not in result.stdout.str()
