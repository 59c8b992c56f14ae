"""Estimators fitted on pandas DataFrames: one input per column, or a matrix with its names."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn_test_data import CITIES, frame_columns, make_customers

from ketch import (
    Framework,
    InvalidInputError,
    ModelLoadError,
    ModelRuntime,
    ModelSpec,
    WrapperCallError,
    WrapperClient,
    WrapperProcess,
    select_framework,
    start_wrapper,
)

pd = pytest.importorskip("pandas")

FEATURE_NAMES_WARNING = "valid feature names"


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("sklearn")


def save(estimator: Any, path: Path) -> Path:
    skops.io.dump(estimator, path)
    return path


def load(framework: Framework, path: Path, **options: str) -> ModelRuntime:
    trusted = ",".join(skops.io.get_untrusted_types(file=path))
    if trusted:
        options = {"trusted_types": trusted, **options}
    return ModelRuntime.load(framework, ModelSpec.from_path(path, options=options))


@pytest.fixture(scope="module")
def customers() -> tuple[Any, np.ndarray]:
    return make_customers(400, seed=0)


@pytest.fixture(scope="module")
def customer_pipeline(customers: tuple[Any, np.ndarray]) -> Any:
    """A ColumnTransformer that picks columns by name, then a logistic regression."""
    frame, renewed = customers
    columns = ColumnTransformer(
        [
            ("numbers", StandardScaler(), ["age", "spend"]),
            (
                "words",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                ["city", "plan"],
            ),
            ("flags", OneHotEncoder(), ["member"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=500)).fit(frame, renewed)


@pytest.fixture(scope="module")
def customer_skops(tmp_path_factory: pytest.TempPathFactory, customer_pipeline: Any) -> Path:
    return save(customer_pipeline, tmp_path_factory.mktemp("frames") / "customers.skops")


def test_each_column_is_an_input_of_its_own_datatype(
    framework: Framework, customer_skops: Path
) -> None:
    runtime = load(framework, customer_skops, method="predict,predict_proba")
    assert [(spec.name, spec.datatype, spec.shape) for spec in runtime.signature.inputs] == [
        ("age", "FP64", (-1,)),
        ("spend", "FP64", (-1,)),
        ("city", "BYTES", (-1,)),
        ("member", "BOOL", (-1,)),
        ("plan", "BYTES", (-1,)),
    ]


def test_rows_become_the_dataframe_the_pipeline_expects(
    framework: Framework,
    customer_skops: Path,
    customer_pipeline: Any,
    customers: tuple[Any, np.ndarray],
) -> None:
    runtime = load(framework, customer_skops, method="predict,predict_proba")
    test, renewed = make_customers(100, seed=1)
    inputs = frame_columns(test)
    inputs["age"] = inputs["age"].astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        outputs = runtime.predict(inputs)
    np.testing.assert_array_equal(outputs["predict"], customer_pipeline.predict(test))
    np.testing.assert_allclose(
        outputs["predict_proba"], customer_pipeline.predict_proba(test), rtol=1e-12
    )
    assert (outputs["predict"] == renewed).mean() > 0.8


def test_a_wrong_column_is_named(framework: Framework, customer_skops: Path) -> None:
    runtime = load(framework, customer_skops)
    inputs = frame_columns(make_customers(3, seed=2)[0])
    inputs["age"] = inputs["age"].astype(np.float64)
    with pytest.raises(InvalidInputError, match="input 'member': expected datatype BOOL"):
        runtime.predict({**inputs, "member": np.array([1, 0, 1])})
    with pytest.raises(InvalidInputError, match="missing 'city'"):
        runtime.predict({name: value for name, value in inputs.items() if name != "city"})
    bad = np.array([b"\xff\xfe", b"oslo", b"rome"], dtype=object)
    with pytest.raises(InvalidInputError, match="input 'city' row 0 is not valid UTF-8"):
        runtime.predict({**inputs, "city": bad})


def test_example_inputs_use_the_known_categories(
    framework: Framework, customer_skops: Path
) -> None:
    runtime = load(framework, customer_skops)
    examples = framework.example_inputs(runtime.model, 12)
    assert examples is not None
    assert set(examples["city"].tolist()) <= {city.encode() for city in CITIES}
    assert examples["member"].dtype == np.bool_
    assert len(runtime.predict(examples)["predict"]) == 12


def test_an_unknown_category_the_encoder_refuses_is_invalid_input(
    framework: Framework, tmp_path: Path, customers: tuple[Any, np.ndarray]
) -> None:
    frame, renewed = customers
    strict = make_pipeline(
        ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="drop"),
        LogisticRegression(),
    ).fit(frame, renewed)
    runtime = load(framework, save(strict, tmp_path / "strict.skops"))
    # the columns it drops are still sent (scikit-learn checks that all are there), as FP64
    assert [s.datatype for s in runtime.signature.inputs] == ["FP64"] * 2 + ["BYTES"] + ["FP64"] * 2
    inputs = {name: np.zeros(2) for name in ("age", "spend", "member", "plan")}
    inputs["city"] = np.array([b"oslo", b"tokyo"], dtype=object)
    with pytest.raises(InvalidInputError, match=r"scikit-learn rejected the input: .*tokyo"):
        runtime.predict(inputs)


@pytest.fixture(scope="module")
def iris_frame_model() -> tuple[Any, Any]:
    frame, species = load_iris(return_X_y=True, as_frame=True)
    return frame, LogisticRegression(max_iter=500).fit(frame, species)


def test_a_numeric_frame_is_a_matrix_with_its_names(
    framework: Framework, tmp_path: Path, iris_frame_model: tuple[Any, Any]
) -> None:
    frame, model = iris_frame_model
    runtime = load(framework, save(model, tmp_path / "iris.skops"), method="predict_proba")
    assert [(s.name, s.datatype, s.shape) for s in runtime.signature.inputs] == [
        ("input", "FP64", (-1, 4))
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn warns when rows come without the names
        outputs = runtime.predict({"input": frame.to_numpy()[:20]})
    np.testing.assert_allclose(outputs["predict_proba"], model.predict_proba(frame.head(20)))


def test_input_columns_serves_a_numeric_frame_column_by_column(
    framework: Framework, tmp_path: Path, iris_frame_model: tuple[Any, Any]
) -> None:
    frame, model = iris_frame_model
    runtime = load(framework, save(model, tmp_path / "iris.skops"), input="columns")
    assert [spec.name for spec in runtime.signature.inputs] == list(frame.columns)
    outputs = runtime.predict(frame_columns(frame.head(5)))
    np.testing.assert_array_equal(outputs["predict"], model.predict(frame.head(5)))


def test_a_column_whose_datatype_is_hidden_can_be_declared(
    framework: Framework, tmp_path: Path, customers: tuple[Any, np.ndarray]
) -> None:
    frame, renewed = customers
    frame = frame.assign(city=frame["city"].astype("category"))
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype")
    model.fit(frame[["age", "city"]], renewed)
    path = save(model, tmp_path / "boosted.skops")
    runtime = load(framework, path)  # its own encoder reveals that city holds strings
    assert [s.datatype for s in runtime.signature.inputs] == ["FP64", "BYTES"]
    declared = load(framework, path, columns="age:INT64")
    assert [s.datatype for s in declared.signature.inputs] == ["INT64", "BYTES"]
    rows = {"age": np.array([30, 70]), "city": np.array([b"oslo", b"rome"], dtype=object)}
    test = pd.DataFrame({"age": [30, 70], "city": pd.Categorical(["oslo", "rome"])})
    np.testing.assert_array_equal(declared.predict(rows)["predict"], model.predict(test))


def test_a_wrong_guess_says_what_to_do(
    framework: Framework, tmp_path: Path, customers: tuple[Any, np.ndarray]
) -> None:
    frame, renewed = customers
    model = make_pipeline(
        ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="drop"),
        LogisticRegression(),
    ).fit(frame, renewed)
    path = save(model, tmp_path / "guess.skops")
    with pytest.raises(
        ModelLoadError,
        match=r"failed on a probe row of its DataFrame columns, read as "
        r"age:FP64,spend:FP64,city:FP64,member:FP64,plan:FP64: .*declare it with the option "
        r"columns=NAME:DATATYPE",
    ):
        load(framework, path, columns="city:FP64")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"columns": "town:BYTES"}, "option columns names 'town', which the estimator was not"),
        ({"columns": "city"}, "option columns: 'city' is not NAME:DATATYPE"),
        ({"columns": "city:TEXT"}, "option columns: 'city:TEXT' is not NAME:DATATYPE"),
        ({"columns": "city:BYTES,city:BYTES"}, "names the column 'city' twice"),
        (
            {"input": "numeric"},
            "input=numeric sends one matrix of numbers, but .* 'city', 'member'",
        ),
    ],
)
def test_bad_column_options_are_named(
    framework: Framework, customer_skops: Path, options: dict[str, str], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(framework, customer_skops, **options)


def test_columns_need_an_estimator_fitted_on_a_frame(
    framework: Framework, digits_skops: Path
) -> None:
    with pytest.raises(ModelLoadError, match="records no column names"):
        load(framework, digits_skops, input="columns")
    with pytest.raises(ModelLoadError, match="option columns applies to estimators fitted on"):
        load(framework, digits_skops, columns="a:FP64")


@pytest.fixture(scope="module")
def customer_wrapper(customer_skops: Path) -> Iterator[WrapperProcess]:
    trusted = ",".join(skops.io.get_untrusted_types(file=customer_skops))
    options = {"method": "predict_proba", "trusted_types": trusted}
    with start_wrapper("sklearn", customer_skops, options=options, echo_stderr=False) as process:
        yield process


def test_over_grpc_with_no_feature_name_warnings(
    customer_wrapper: WrapperProcess, customer_pipeline: Any
) -> None:
    test, _ = make_customers(30, seed=3)
    inputs = frame_columns(test)
    inputs["age"] = inputs["age"].astype(np.float64)
    with WrapperClient(customer_wrapper.address, model="customers") as client:
        metadata = client.model_metadata()
        assert [(s.name, s.datatype) for s in metadata.inputs][2:4] == [
            ("city", "BYTES"),
            ("member", "BOOL"),
        ]
        for start in range(0, 30, 10):
            part = {name: values[start : start + 10] for name, values in inputs.items()}
            outputs = client.infer(part)
            np.testing.assert_allclose(
                outputs["predict_proba"],
                customer_pipeline.predict_proba(test.iloc[start : start + 10]),
                rtol=1e-12,
            )
        with pytest.raises(WrapperCallError) as caught:
            client.infer({**inputs, "member": inputs["member"].astype(np.int64)})
        assert caught.value.code == "INVALID_ARGUMENT"
    customer_wrapper.stop()
    log = "".join(customer_wrapper.stderr_tail)
    assert FEATURE_NAMES_WARNING not in log
    assert "Warning" not in log


def test_without_pandas_a_frame_model_names_the_extra(
    framework: Framework, customer_skops: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with pytest.raises(
        ModelLoadError,
        match=r"fitted on a pandas DataFrame: .*pip install 'ketch-sklearn\[pandas\]'",
    ):
        load(framework, customer_skops)
