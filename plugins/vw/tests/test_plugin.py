"""The vw plugin in process: model kinds, inputs, arguments, options and errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from vw_test_models import TrainedModel, bandit_row, load, texts_of

from ketch import (
    DeviceUnavailableError,
    Framework,
    InvalidInputError,
    ModelLoadError,
    ModelRuntime,
    ModelSpec,
)
from ketch_vw import dense_example, sidecar_path


def vw_predictions(model: TrainedModel, texts: np.ndarray) -> list[Any]:
    """What VW itself predicts for each text row."""
    reference = model.reference()
    lines = [text.decode() for text in texts.tolist()]
    if model.task == "bandit":
        return [reference.predict(line.splitlines()) for line in lines]
    return [reference.predict(line) for line in lines]


def specs(runtime: ModelRuntime) -> tuple[list[Any], list[Any]]:
    signature = runtime.signature
    return (
        [(s.name, s.datatype, s.shape) for s in signature.inputs],
        [(s.name, s.datatype, s.shape) for s in signature.outputs],
    )


def test_regression_signature_and_predictions(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    model = vw_models["regression"]
    runtime = load(framework, model.path)
    assert specs(runtime) == (
        [("input", "BYTES", (-1,))],
        [("prediction", "FP32", (-1,))],
    )
    assert runtime.signature.platform == "vowpalwabbit"
    assert runtime.signature.capabilities.observe
    assert runtime.observes
    outputs = runtime.predict({"input": model.test.texts})
    np.testing.assert_array_equal(
        outputs["prediction"], np.asarray(vw_predictions(model, model.test.texts), np.float32)
    )
    error = np.abs(outputs["prediction"] - model.test.labels).mean()
    assert error < 0.2


def test_binary_signature_and_predictions(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    model = vw_models["binary"]
    runtime = load(framework, model.path)
    assert specs(runtime)[1] == [("label", "INT64", (-1,)), ("score", "FP32", (-1,))]
    outputs = runtime.predict({"input": model.test.texts})
    np.testing.assert_array_equal(outputs["label"], vw_predictions(model, model.test.texts))
    np.testing.assert_array_equal(outputs["label"], np.where(outputs["score"] > 0, 1, -1))
    assert (outputs["label"] == model.test.labels).mean() > 0.9


def test_multiclass_with_probabilities(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    model = vw_models["digits"]
    runtime = load(framework, model.path, input="dense", n_features="64")
    assert specs(runtime) == (
        [("input", "FP64", (-1, 64))],
        [("label", "INT64", (-1,)), ("probabilities", "FP32", (-1, 10))],
    )
    outputs = runtime.predict({"input": model.test.rows})
    np.testing.assert_array_equal(
        outputs["probabilities"], np.asarray(vw_predictions(model, model.test.texts), np.float32)
    )
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    assert (outputs["label"] == model.test.labels).mean() > 0.85


def test_multiclass_labels_only(framework: Framework, vw_models: dict[str, TrainedModel]) -> None:
    model = vw_models["digits_labels"]
    runtime = load(framework, model.path)
    assert specs(runtime)[1] == [("label", "INT64", (-1,))]
    outputs = runtime.predict({"input": model.test.texts})
    np.testing.assert_array_equal(outputs["label"], vw_predictions(model, model.test.texts))
    assert (outputs["label"] == model.test.labels).mean() > 0.8


def test_contextual_bandit_probabilities(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    model = vw_models["bandit"]
    runtime = load(framework, model.path, actions="3")
    assert specs(runtime)[1] == [("probabilities", "FP32", (-1, 3))]
    outputs = runtime.predict({"input": model.test.texts})
    np.testing.assert_array_equal(
        outputs["probabilities"], np.asarray(vw_predictions(model, model.test.texts), np.float32)
    )
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    users = model.test.rows
    assert (outputs["probabilities"].argmax(axis=1) == users % 3).all()


def test_bandit_rows_with_fewer_actions_are_padded(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    runtime = load(framework, vw_models["bandit"].path, actions="5")
    rows = texts_of([bandit_row(1, actions=2), bandit_row(1, actions=3), "|a item=i1"])
    probabilities = runtime.predict({"input": rows})["probabilities"]
    assert probabilities.shape == (3, 5)
    np.testing.assert_array_equal(probabilities[0, 2:], 0.0)
    np.testing.assert_array_equal(probabilities[1, 3:], 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert probabilities[2, 0] == 1.0


def test_dense_and_text_rows_agree(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    model = vw_models["digits"]
    dense = load(framework, model.path, input="dense", n_features="64", input_datatype="FP32")
    text = load(framework, model.path)
    rows = model.test.rows[:20].astype(np.float32)
    np.testing.assert_array_equal(
        dense.predict({"input": rows})["probabilities"],
        text.predict({"input": model.test.texts[:20]})["probabilities"],
    )


def test_dense_namespace_and_input_name(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    model = vw_models["regression"]
    runtime = load(
        framework, model.path, input="dense", n_features="5", namespace="g", input_name="x"
    )
    assert specs(runtime)[0] == [("x", "FP64", (-1, 5))]
    rows = model.test.rows[:5]
    reference = model.reference()
    expected = [
        reference.predict("|g " + " ".join(f"{i}:{v}" for i, v in enumerate(row))) for row in rows
    ]
    np.testing.assert_allclose(runtime.predict({"x": rows})["prediction"], expected, rtol=1e-6)


def test_dense_example_writes_what_a_dense_model_reads() -> None:
    assert dense_example([0.5, 0, 2], "f") == "|f 0:0.5 2:2"
    assert dense_example(np.array([0.5, 0.0, 2.0]), "g") == "|g 0:0.5 2:2.0"
    assert dense_example(np.array([3, 0, 1], dtype=np.int32), "f") == "|f 0:3 2:1"


def test_a_rows_own_label_and_tag_are_ignored(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    model = vw_models["regression"]
    runtime = load(framework, model.path)
    bare = model.test.texts[:3]
    labelled = texts_of(f"{100 * i} 2.0 'tag{i} {text.decode()}" for i, text in enumerate(bare))
    np.testing.assert_array_equal(
        runtime.predict({"input": bare})["prediction"],
        runtime.predict({"input": labelled})["prediction"],
    )


def test_empty_batch(framework: Framework, vw_models: dict[str, TrainedModel]) -> None:
    runtime = load(framework, vw_models["digits"].path)
    outputs = runtime.predict({"input": np.empty(0, dtype=object)})
    assert outputs["label"].shape == (0,)
    assert outputs["label"].dtype == np.int64
    assert outputs["probabilities"].shape == (0, 10)
    assert outputs["probabilities"].dtype == np.float32


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["price 3 size 2"], r"input 'input' row 0: 'price 3 size 2' is not a VW example"),
        (["|f 0:1", "|f 0:1\n|f 1:1"], r"input 'input' row 1 holds several lines"),
        (["|f 0:1e30 1:2"], r"input 'input' row 0 has a feature value that is infinite"),
    ],
)
def test_bad_text_rows_are_named(
    framework: Framework,
    vw_models: dict[str, TrainedModel],
    rows: list[str],
    message: str,
) -> None:
    runtime = load(framework, vw_models["regression"].path)
    with pytest.raises(InvalidInputError, match=message):
        runtime.predict({"input": texts_of(rows)})


def test_invalid_utf8_bytes(framework: Framework, vw_models: dict[str, TrainedModel]) -> None:
    runtime = load(framework, vw_models["regression"].path)
    rows = np.array([b"|f 0:1", b"|f \xff"], dtype=object)
    with pytest.raises(InvalidInputError, match="row 1 is not valid UTF-8"):
        runtime.predict({"input": rows})


def test_non_finite_dense_rows(framework: Framework, vw_models: dict[str, TrainedModel]) -> None:
    runtime = load(framework, vw_models["regression"].path, input="dense", n_features="5")
    rows = np.zeros((3, 5))
    rows[2, 1] = np.nan
    with pytest.raises(InvalidInputError, match="input 'input' row 2 holds NaN or infinity"):
        runtime.predict({"input": rows})


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (bandit_row(0, actions=4), r"row 0 has 4 actions; this model answers at most 3"),
        ("shared |s user=u1", r"row 0 has no action lines"),
        ("|a item=i0\nshared |s user=u1", r"only the first line may be the shared one"),
    ],
)
def test_bad_bandit_rows(
    framework: Framework, vw_models: dict[str, TrainedModel], row: str, message: str
) -> None:
    runtime = load(framework, vw_models["bandit"].path, actions="3")
    with pytest.raises(InvalidInputError, match=message):
        runtime.predict({"input": texts_of([row])})


# --- model files and their arguments ----------------------------------------------------------


def test_not_a_vw_file_is_not_recognised(framework: Framework, tmp_path: Path) -> None:
    path = tmp_path / "model.vw"
    path.write_bytes(b"\x00\x01not a model")
    with pytest.raises(ModelLoadError, match="does not recognise"):
        load(framework, path)


def test_truncated_vw_file(
    framework: Framework, vw_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    path = tmp_path / "cut.vw"
    path.write_bytes(vw_models["digits"].path.read_bytes()[:40])
    with pytest.raises(ModelLoadError, match=r"cut\.vw: VW cannot load it"):
        load(framework, path, args="--oaa 10")


def test_arguments_file_beside_the_model_is_used(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("digits")
    assert "--probabilities" in sidecar_path(model.path).read_text()
    assert "probabilities" in load(framework, model.path).signature.output_specs
    sidecar_path(model.path).unlink()
    assert "probabilities" not in load(framework, model.path).signature.output_specs


def test_args_option_replaces_the_file(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    runtime = load(framework, vw_models["digits_labels"].path, args="--probabilities")
    assert "probabilities" in runtime.signature.output_specs


def test_training_leftovers_in_the_file_are_dropped(
    framework: Framework,
    model_copy: Callable[[str], TrainedModel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = model_copy("digits")
    sidecar_path(model.path).write_text(
        f"-d train.txt -c --passes 3 -f out.vw {model.arguments} --readable_model=model.txt\n"
    )
    with caplog.at_level(logging.WARNING, logger="ketch_vw"):
        runtime = load(framework, model.path)
    assert "probabilities" in runtime.signature.output_specs
    assert "-d train.txt, -c, --passes 3, -f out.vw, --readable_model=model.txt" in caplog.text
    assert not (model.path.parent / "out.vw").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--oaa 10 -f copy.vw", r"option args: -f copy.vw read or write files"),
        ("--data=train.txt", r"option args: --data=train.txt read or write files"),
        ("-t", r"option args: -t read or write files"),
        ("--oaa 10 'unclosed", r"option args: cannot split"),
        ("--no_such_argument", r"VW cannot load it .*--no_such_argument"),
        ("--oaa 3", r"VW cannot load it .*Disagreeing option values for 'oaa'"),
    ],
)
def test_bad_args_are_named(
    framework: Framework, vw_models: dict[str, TrainedModel], args: str, message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(framework, vw_models["digits"].path, args=args)


def test_unsupported_kind_of_model(framework: Framework, tmp_path: Path) -> None:
    from vowpalwabbit import pyvw

    workspace = pyvw.Workspace("--quiet --csoaa 3")
    workspace.learn("1:0 2:1 3:1 |f a")
    path = tmp_path / "csoaa.vw"
    workspace.save(str(path))
    with pytest.raises(ModelLoadError, match=r"serves regression, binary .* prediction type"):
        load(framework, path)


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("digits", {"methd": "x"}, r"unknown option\(s\) methd for the vw plugin; known: args"),
        ("digits", {"input": "image"}, r"input='image' is not one of text, dense"),
        ("digits", {"input": "dense"}, r"input=dense needs n_features"),
        ("digits", {"n_features": "64"}, r"option n_features applies to input=dense only"),
        ("digits", {"input": "dense", "n_features": "0"}, r"n_features=0 must be at least 1"),
        ("digits", {"namespace": "a b"}, r"namespace='a b' must be a non-empty word"),
        ("digits", {"actions": "3"}, r"actions applies to contextual-bandit models only"),
        ("bandit", {}, r"contextual-bandit model: set the option actions"),
        ("bandit", {"actions": "3", "input": "dense", "n_features": "2"}, r"input=text"),
        ("digits", {"learn": "maybe"}, r"learn='maybe' is not true or false"),
        ("digits", {"learn": "false", "save_every_updates": "5"}, r"but learn=false"),
        ("digits", {"save_every_seconds": "-1"}, r"must be a positive number of seconds"),
        ("digits", {"save_every_updates": "often"}, r"save_every_updates='often' is not a whole"),
        ("digits", {"save_path": "/no/such/folder/m.vw"}, r"is not a writable folder"),
    ],
)
def test_bad_options_are_named(
    framework: Framework,
    vw_models: dict[str, TrainedModel],
    model: str,
    options: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(framework, vw_models[model].path, **options)


def test_save_path_may_not_be_a_folder(
    framework: Framework, vw_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match="is a folder; name a file"):
        load(framework, vw_models["digits"].path, save_path=str(tmp_path))


def test_only_the_cpu(framework: Framework, vw_models: dict[str, TrainedModel]) -> None:
    model = framework.load(ModelSpec.from_path(vw_models["regression"].path))
    assert framework.place(model, "cpu") is model
    with pytest.raises(
        DeviceUnavailableError,
        match=r"'cuda:0' is not available: Vowpal Wabbit runs on the CPU only \(available: cpu\)",
    ):
        framework.place(model, "cuda:0")


def test_discovery_does_not_import_vowpal_wabbit() -> None:
    script = (
        "import json, sys\n"
        "import ketch_vw.plugin\n"
        "from ketch import installed_plugins, select_framework\n"
        "installed_plugins()\n"
        "select_framework('vw')\n"
        "print(json.dumps([m for m in ('vowpalwabbit', 'pylibvw') if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout) == []


def test_a_directory_holding_the_model_and_its_arguments_file_serves_the_model(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("digits")  # the model file and its .args sidecar, alone in a folder
    runtime = load(framework, model.path.parent)
    assert runtime.spec.path == str(model.path)
    assert "probabilities" in runtime.signature.output_specs
