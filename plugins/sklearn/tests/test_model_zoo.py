"""The shapes people train in scikit-learn, each served by a real ``ketch serve`` and compared
with the estimator in process: the next common shape that breaks is caught here first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn_test_data import frame_columns, make_customers, make_sentences

from ketch import WrapperClient, WrapperProcess, start_wrapper


@dataclass(frozen=True)
class ZooModel:
    """A fitted estimator, what to serve it with, rows to send and what it takes in process."""

    estimator: Any
    methods: tuple[str, ...]
    inputs: dict[str, np.ndarray]
    in_process_rows: Any
    options: dict[str, str] = field(default_factory=dict)


def scaled_logistic() -> ZooModel:
    rows, labels = load_digits(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(
        rows[:1000], labels[:1000]
    )
    return ZooModel(
        model, ("predict", "predict_proba"), {"input": rows[1000:1100]}, rows[1000:1100]
    )


def tfidf_text() -> ZooModel:
    sentences, topics = make_sentences(300, seed=4)
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LinearSVC()).fit(sentences, topics)
    test, _ = make_sentences(40, seed=5)
    column = np.array([sentence.encode() for sentence in test], dtype=object)
    return ZooModel(model, ("predict", "decision_function"), {"input": column}, test)


def dataframe_columns() -> ZooModel:
    frame, renewed = make_customers(300, seed=6)
    columns = ColumnTransformer(
        [
            ("numbers", StandardScaler(), ["age", "spend"]),
            ("words", OneHotEncoder(handle_unknown="ignore"), ["city", "plan", "member"]),
        ]
    )
    model = make_pipeline(columns, LogisticRegression(max_iter=500)).fit(frame, renewed)
    test, _ = make_customers(50, seed=7)
    inputs = frame_columns(test)
    inputs["age"] = inputs["age"].astype(np.float64)
    return ZooModel(model, ("predict", "predict_proba"), inputs, test)


def random_forest() -> ZooModel:
    rows, species = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=25, random_state=0).fit(rows[::2], species[::2])
    return ZooModel(model, ("predict", "predict_proba"), {"input": rows[1::2]}, rows[1::2])


def gradient_boosting() -> ZooModel:
    rows, target = load_diabetes(return_X_y=True)
    model = GradientBoostingRegressor(n_estimators=40, random_state=0).fit(rows[:350], target[:350])
    return ZooModel(model, ("predict",), {"input": rows[350:]}, rows[350:])


def svc_with_probabilities() -> ZooModel:
    """An SVC with predict_proba: calibrated, as scikit-learn 1.9 has it instead of
    ``SVC(probability=True)``."""
    rows, labels = load_breast_cancer(return_X_y=True)
    calibrated = CalibratedClassifierCV(SVC(), ensemble=False)
    model = make_pipeline(StandardScaler(), calibrated).fit(rows[:400], labels[:400])
    return ZooModel(model, ("predict", "predict_proba"), {"input": rows[400:]}, rows[400:])


ZOO: dict[str, Callable[[], ZooModel]] = {
    "scaled-logistic": scaled_logistic,
    "tfidf-text": tfidf_text,
    "dataframe-columns": dataframe_columns,
    "random-forest": random_forest,
    "gradient-boosting": gradient_boosting,
    "svc-with-probabilities": svc_with_probabilities,
}


@pytest.fixture(scope="module", params=sorted(ZOO))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ZooModel, WrapperProcess]]:
    zoo = ZOO[request.param]()
    path = tmp_path_factory.mktemp("zoo") / f"{request.param}.skops"
    skops.io.dump(zoo.estimator, path)
    options = {"method": ",".join(zoo.methods), **zoo.options}
    trusted = skops.io.get_untrusted_types(file=path)
    if trusted:
        options["trusted_types"] = ",".join(trusted)
    with start_wrapper("sklearn", path, options=options, echo_stderr=False) as process:
        yield zoo, process


def test_served_model_answers_as_the_estimator(served: tuple[ZooModel, WrapperProcess]) -> None:
    zoo, process = served
    with WrapperClient(process.address, model=process.ready.model) as client:
        names = [spec.name for spec in client.model_metadata().inputs]
        assert names == list(zoo.inputs)
        outputs = client.infer(zoo.inputs)
        single = client.infer({name: values[:1] for name, values in zoo.inputs.items()})
    for method in zoo.methods:
        expected = np.asarray(getattr(zoo.estimator, method)(zoo.in_process_rows))
        got = outputs[method]
        if expected.dtype.kind in "OU":
            assert [value.decode() for value in got.tolist()] == expected.tolist()
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(single[method], expected[:1], rtol=1e-9, atol=1e-12)
    process.stop()
    assert "Warning" not in "".join(process.stderr_tail)
