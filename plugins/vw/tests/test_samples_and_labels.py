"""What the vw plugin tells probes and callers: sample rows per task, and the labels it takes."""

from __future__ import annotations

import numpy as np
import pytest
from vw_test_models import MODELS, TrainedModel, load

from ketch import Framework, LabelSpec
from ketch_vw import dense_example

SERVED_AS = {
    "regression": {},
    "binary": {},
    "digits": {},
    "digits_labels": {},
    "bandit": {"actions": "3"},
    "digits_dense": {"input": "dense", "n_features": "64"},
    "digits_dense_ints": {"input": "dense", "n_features": "64", "input_datatype": "INT32"},
}
LABELS = {
    "regression": LabelSpec("numbers"),
    "binary": LabelSpec("classes", (-1, 1)),
    "digits": LabelSpec("classes", tuple(range(1, 11))),
    "bandit": LabelSpec("bandit"),
}


def model_name(served: str) -> str:
    return served if served in MODELS else "digits"


@pytest.mark.parametrize("served", sorted(SERVED_AS))
@pytest.mark.parametrize("rows", [1, 7])
def test_example_inputs_are_rows_the_model_predicts(
    framework: Framework, vw_models: dict[str, TrainedModel], served: str, rows: int
) -> None:
    runtime = load(framework, vw_models[model_name(served)].path, **SERVED_AS[served])
    examples = framework.example_inputs(runtime.model, rows)
    assert examples is not None
    [spec] = runtime.signature.inputs
    assert list(examples) == [spec.name]
    column = examples[spec.name]
    assert len(column) == rows
    assert len({row.tobytes() if column.dtype != object else row for row in column}) == rows
    outputs = runtime.predict(examples)
    assert all(len(output) == rows for output in outputs.values())
    if runtime.observes and served in LABELS:
        assert runtime.signature.capabilities.labels == LABELS[served]


def test_bandit_examples_use_the_interaction_namespaces(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    runtime = load(framework, vw_models["bandit"].path, actions="3")  # trained with -q sa
    examples = framework.example_inputs(runtime.model, 2)
    assert examples is not None
    lines = examples["input"][0].decode().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("shared |a ")
    assert all("|a " in line and "|s " in line for line in lines)
    probabilities = runtime.predict(examples)["probabilities"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_a_read_only_model_declares_no_labels(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    runtime = load(framework, vw_models["digits"].path, learn="false")
    assert runtime.signature.capabilities.labels is None


def test_dense_example_defaults_to_the_plugins_namespace(
    framework: Framework, vw_models: dict[str, TrainedModel]
) -> None:
    model = vw_models["regression"]
    rows = model.test.rows[:4]
    runtime = load(framework, model.path, input="dense", n_features="5")
    reference = model.reference()
    expected = [reference.predict(dense_example(row)) for row in rows]
    assert dense_example([0.5, 0, 2]) == "|f 0:0.5 2:2"
    np.testing.assert_allclose(runtime.predict({"input": rows})["prediction"], expected, rtol=1e-6)
