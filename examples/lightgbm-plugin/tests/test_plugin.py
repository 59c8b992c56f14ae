"""The lightgbm plugin's own rules: what it serves, its options, its errors, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightgbm
import numpy as np
import pytest

from ketch import (
    DeviceUnavailableError,
    Framework,
    ModelLoadError,
    ModelRuntime,
    ModelSpec,
    installed_plugins,
    select_framework,
)
from ketch_lightgbm.conformance import FEATURES, make_data, train


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("lightgbm")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lightgbm")
    return {task: train(task, folder) for task in ("binary", "multiclass", "regression")}


def load(framework: Framework, path: Path, **options: str) -> ModelRuntime:
    return ModelRuntime.load(framework, ModelSpec.from_path(path, options=options))


def test_importing_the_plugin_does_not_import_lightgbm() -> None:
    code = "import sys, ketch_lightgbm.plugin; print('lightgbm' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_the_plugin_is_installed_under_its_name() -> None:
    assert installed_plugins()["lightgbm"].value == "ketch_lightgbm.plugin"


@pytest.mark.parametrize(
    ("task", "outputs"),
    [
        ("binary", {"probability": (-1,), "label": (-1,)}),
        ("multiclass", {"probabilities": (-1, 3), "label": (-1,)}),
        ("regression", {"prediction": (-1,)}),
    ],
)
def test_answers_are_lightgbms_own(
    framework: Framework, models: dict[str, Path], task: str, outputs: dict[str, tuple[int, ...]]
) -> None:
    runtime = load(framework, models[task])
    signature = runtime.signature
    assert signature.inputs[0].shape == (-1, FEATURES)
    assert {spec.name: spec.shape for spec in signature.outputs} == outputs
    rows, _ = make_data(task, rows=20, seed=3)
    expected = np.asarray(lightgbm.Booster(model_file=str(models[task])).predict(rows))
    answers = runtime.predict({"input": rows})
    first = next(iter(outputs))
    np.testing.assert_array_equal(answers[first], expected)
    if task == "binary":
        np.testing.assert_array_equal(answers["label"], (expected > 0.5).astype(np.int64))
    if task == "multiclass":
        np.testing.assert_array_equal(answers["label"], expected.argmax(axis=1))


def test_options_raw_scores_iterations_and_fp32_rows(
    framework: Framework, models: dict[str, Path]
) -> None:
    runtime = load(
        framework, models["multiclass"], raw_score="true", num_iteration="5", input_datatype="fp32"
    )
    rows, _ = make_data("multiclass", rows=8, seed=4)
    rows32 = rows.astype(np.float32)
    booster = lightgbm.Booster(model_file=str(models["multiclass"]))
    answers = runtime.predict({"input": rows32})
    raw = booster.predict(rows32, raw_score=True, num_iteration=5)
    np.testing.assert_array_equal(answers["raw_score"], raw)
    np.testing.assert_array_equal(
        answers["probabilities"], booster.predict(rows32, num_iteration=5)
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"colour": "blue"},
            "unknown option.s. colour for the lightgbm plugin; known options: input_datatype, "
            "num_iteration, num_threads, raw_score",
        ),
        ({"num_threads": "many"}, "option num_threads: expected a whole number, got 'many'"),
        ({"num_iteration": "0"}, "option num_iteration: expected at least 1, got 0"),
        ({"num_iteration": "99"}, "option num_iteration=99: .*binary.txt has only 12 boosting"),
        ({"input_datatype": "INT8"}, "option input_datatype: expected FP64 or FP32, got 'INT8'"),
        ({"raw_score": "maybe"}, "option raw_score: expected true or false, got 'maybe'"),
    ],
)
def test_bad_options_are_refused_by_name(
    framework: Framework, models: dict[str, Path], options: dict[str, str], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(framework, models["binary"], **options)


def test_files_that_are_not_lightgbm_models(framework: Framework, tmp_path: Path) -> None:
    other = tmp_path / "model.onnx"
    other.write_bytes(b"\x08\x07onnx")
    with pytest.raises(ModelLoadError, match="does not recognise the model at"):
        load(framework, other)
    broken = tmp_path / "broken.txt"
    broken.write_text("tree\nversion=v4\nnum_class=banana\n")
    with pytest.raises(ModelLoadError, match=r"broken\.txt: LightGBM cannot load this model file"):
        load(framework, broken)


def test_only_the_cpu(framework: Framework, models: dict[str, Path]) -> None:
    model = framework.load(ModelSpec.from_path(models["binary"]))
    with pytest.raises(
        DeviceUnavailableError,
        match=r"device 'cuda:0' is not available: LightGBM predicts on the CPU only "
        r"\(available: cpu\)",
    ):
        framework.place(model, "cuda:0")
