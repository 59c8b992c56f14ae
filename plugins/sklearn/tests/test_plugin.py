"""The scikit-learn plugin in process: formats, safety, options, signatures and predictions."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC
from sklearn_test_data import make_sentences

from ketch import (
    DeviceUnavailableError,
    Framework,
    InvalidInputError,
    ModelLoadError,
    ModelRuntime,
    ModelSpec,
    select_framework,
)


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("sklearn")


def load(framework: Framework, path: Path, **options: str) -> ModelRuntime:
    return ModelRuntime.load(framework, ModelSpec.from_path(path, options=options))


def test_skops_digits_signature_and_predictions(
    framework: Framework, digits_skops: Path, digits_classifier: Any, digits: Any
) -> None:
    runtime = load(framework, digits_skops)
    signature = runtime.signature
    assert signature.platform == "scikit-learn"
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [
        ("input", "FP64", (-1, 64))
    ]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("predict", "INT64", (-1,))
    ]
    assert signature.capabilities.devices == ("cpu",)
    assert not runtime.observes
    rows = digits[2] / 16.0
    outputs = runtime.predict({"input": rows})
    np.testing.assert_array_equal(outputs["predict"], digits_classifier.predict(rows))


def test_several_methods_become_several_outputs(
    framework: Framework, digits_skops: Path, digits_classifier: Any, digits: Any
) -> None:
    runtime = load(framework, digits_skops, method="predict_proba, decision_function")
    shapes = {s.name: (s.datatype, s.shape) for s in runtime.signature.outputs}
    assert shapes == {
        "predict_proba": ("FP64", (-1, 10)),
        "decision_function": ("FP64", (-1, 10)),
    }
    rows = digits[2][:20] / 16.0
    outputs = runtime.predict({"input": rows})
    np.testing.assert_allclose(outputs["predict_proba"], digits_classifier.predict_proba(rows))
    np.testing.assert_allclose(
        outputs["decision_function"], digits_classifier.decision_function(rows)
    )


def test_text_pipeline_takes_and_returns_bytes(
    framework: Framework, text_skops: Path, text_classifier: Any
) -> None:
    runtime = load(framework, text_skops)
    assert [(s.datatype, s.shape) for s in runtime.signature.inputs] == [("BYTES", (-1,))]
    assert [(s.datatype, s.shape) for s in runtime.signature.outputs] == [("BYTES", (-1,))]
    sentences, topics = make_sentences(40, seed=7)
    rows = np.array([s.encode() for s in sentences], dtype=object)
    outputs = runtime.predict({"input": rows})
    expected = [label.encode() for label in text_classifier.predict(sentences)]
    assert outputs["predict"].tolist() == expected
    accuracy = np.mean(
        [got.decode() == want for got, want in zip(outputs["predict"], topics, strict=True)]
    )
    assert accuracy > 0.9


def test_text_example_inputs_are_sentences_of_its_vocabulary(
    framework: Framework, text_skops: Path, text_classifier: Any
) -> None:
    runtime = load(framework, text_skops)
    examples = framework.example_inputs(runtime.model, 5)
    assert examples is not None
    vocabulary = set(text_classifier[0].vocabulary_)
    sentences = [row.decode() for row in examples["input"]]
    assert len(set(sentences)) == 5
    assert all(set(sentence.split()) <= vocabulary for sentence in sentences)
    assert len(runtime.predict(examples)["predict"]) == 5


def test_a_numeric_matrix_offers_no_example_inputs(
    framework: Framework, digits_skops: Path
) -> None:
    runtime = load(framework, digits_skops)
    assert framework.example_inputs(runtime.model, 3) is None


def test_invalid_utf8_text_is_rejected(framework: Framework, text_skops: Path) -> None:
    runtime = load(framework, text_skops)
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        runtime.predict({"input": np.array([b"\xff\xfe"], dtype=object)})


def test_multi_output_regressor(framework: Framework, tmp_path: Path) -> None:
    rows, _ = load_iris(return_X_y=True)
    targets = np.column_stack([rows[:, 0] * 2, rows[:, 1] - rows[:, 2]])
    model = Ridge().fit(rows, targets)
    path = tmp_path / "ridge.skops"
    skops.io.dump(model, path)
    runtime = load(framework, path, input_datatype="FP32")
    assert runtime.signature.inputs[0].datatype == "FP32"
    assert [(s.datatype, s.shape) for s in runtime.signature.outputs] == [("FP64", (-1, 2))]
    got = runtime.predict({"input": rows[:5].astype(np.float32)})["predict"]
    np.testing.assert_allclose(got, model.predict(rows[:5].astype(np.float32)))


def test_string_labels_from_numeric_input(framework: Framework, tmp_path: Path) -> None:
    rows, labels = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[labels]
    path = tmp_path / "iris_names.skops"
    skops.io.dump(LogisticRegression(max_iter=1000).fit(rows, names), path)
    runtime = load(framework, path)
    assert runtime.signature.outputs[0].datatype == "BYTES"
    assert runtime.predict({"input": rows[:1]})["predict"].tolist() == [b"setosa"]


def test_empty_batch_keeps_datatypes_and_shapes(framework: Framework, digits_skops: Path) -> None:
    runtime = load(framework, digits_skops, method="predict,predict_proba")
    outputs = runtime.predict({"input": np.zeros((0, 64))})
    assert outputs["predict"].shape == (0,)
    assert outputs["predict"].dtype == np.int64
    assert outputs["predict_proba"].shape == (0, 10)


def test_nan_input_is_the_callers_fault(framework: Framework, digits_skops: Path) -> None:
    runtime = load(framework, digits_skops)
    rows = np.zeros((2, 64))
    rows[1, 3] = np.nan
    with pytest.raises(InvalidInputError, match=r"scikit-learn rejected the input.*NaN"):
        runtime.predict({"input": rows})


@pytest.fixture(scope="module")
def iris_pickles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rows, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(rows, labels)
    folder = tmp_path_factory.mktemp("pickles")
    paths = {"joblib": folder / "iris.joblib", "pickle": folder / "iris.pkl"}
    joblib.dump(model, paths["joblib"])
    with paths["pickle"].open("wb") as file:
        pickle.dump(model, file)
    return paths


@pytest.mark.parametrize("kind", ["joblib", "pickle"])
def test_pickles_need_consent(
    framework: Framework, iris_pickles: dict[str, Path], kind: str
) -> None:
    with pytest.raises(ModelLoadError, match=f"is a {kind} file.*--trust-pickle"):
        load(framework, iris_pickles[kind])
    runtime = load(framework, iris_pickles[kind], trust_pickle="true")
    rows, labels = load_iris(return_X_y=True)
    assert (runtime.predict({"input": rows})["predict"] == labels).mean() > 0.9


def test_untrusted_skops_types_are_named(framework: Framework, tmp_path: Path) -> None:
    rows, labels = load_iris(return_X_y=True)
    model = make_pipeline(FunctionTransformer(abs), LogisticRegression(max_iter=1000))
    path = tmp_path / "abs.skops"
    skops.io.dump(model.fit(rows, labels), path)
    with pytest.raises(
        ModelLoadError, match=r"does not trust by default: builtins\.abs.*trusted_types"
    ):
        load(framework, path)
    runtime = load(framework, path, trusted_types="builtins.abs")
    assert runtime.predict({"input": rows[:3]})["predict"].shape == (3,)


def test_format_can_be_forced(framework: Framework, digits_skops: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "digits.model"
    renamed.write_bytes(digits_skops.read_bytes())
    with pytest.raises(ModelLoadError, match="does not recognise"):
        load(framework, renamed)
    assert load(framework, renamed, format="skops").signature.inputs[0].shape == (-1, 64)


def test_corrupt_skops_file(framework: Framework, tmp_path: Path) -> None:
    path = tmp_path / "broken.skops"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(ModelLoadError, match="is not a readable skops file"):
        load(framework, path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"methd": "predict"}, "unknown option.*methd.*known: method"),
        ({"method": "predict_probability"}, "predict_probability is not one of predict"),
        ({"method": "predict,predict"}, "names a method twice"),
        ({"input": "image"}, "input='image' is not one of auto, numeric, text"),
        ({"input_datatype": "BYTES"}, "input_datatype='BYTES' is not one of"),
        ({"n_features": "many"}, "n_features='many' is not a whole number"),
    ],
)
def test_bad_options_are_named(
    framework: Framework, digits_skops: Path, options: dict[str, str], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(framework, digits_skops, **options)


def test_missing_method_lists_the_available_ones(framework: Framework, tmp_path: Path) -> None:
    rows, labels = load_iris(return_X_y=True)
    path = tmp_path / "svc.skops"
    skops.io.dump(LinearSVC().fit(rows, labels), path)
    with pytest.raises(
        ModelLoadError, match="LinearSVC has no predict_proba; it offers predict, decision_function"
    ):
        load(framework, path, method="predict_proba")


def test_not_an_estimator(framework: Framework, tmp_path: Path) -> None:
    path = tmp_path / "data.skops"
    skops.io.dump({"weights": [1, 2, 3]}, path)
    with pytest.raises(ModelLoadError, match="dict has no predict"):
        load(framework, path)


def test_feature_count_option_when_the_estimator_does_not_record_one(
    framework: Framework, tmp_path: Path
) -> None:
    rows, labels = load_iris(return_X_y=True)
    model = LinearRegression().fit(rows, labels)
    del model.n_features_in_
    path = tmp_path / "nofeatures.skops"
    skops.io.dump(model, path)
    with pytest.raises(ModelLoadError, match="set the option n_features"):
        load(framework, path)
    assert load(framework, path, n_features="4").signature.inputs[0].shape == (-1, 4)


def test_only_the_cpu(framework: Framework, digits_skops: Path) -> None:
    model = framework.load(ModelSpec.from_path(digits_skops))
    assert framework.place(model, "cpu") is model
    with pytest.raises(
        DeviceUnavailableError,
        match=r"'cuda:0' is not available: scikit-learn runs on the CPU only \(available: cpu\)",
    ):
        framework.place(model, "cuda:0")
