"""Feedback forwarded to the models that learn online, in each model's numbering of the labels.

An app numbers its classes 0 to 9; Vowpal Wabbit's ``--oaa 10`` numbers them 1 to 10
and says so in its capabilities. A real gateway and a real ``ketch serve vw`` wrapper
show that the label is mapped both ways (feedback sent to the model, answers read
from it), and that a label a model cannot take is reported in the feedback response.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gateway_test_support import ADMIN_TOKEN
from in_process import LocalModels, gateway_client
from vowpalwabbit import pyvw

from ketch import LabelSpec, TensorSpec
from ketch_gateway import (
    GatewayProcess,
    app_table,
    config_text,
    model_table,
    start_gateway,
    version_table,
    write_config,
)
from ketch_gateway.control.config_writer import Table
from ketch_gateway.correction.answers import AnswerReader
from ketch_gateway.correction.label_mapping import LabelMapping, LabelRefused
from ketch_vw import dense_example, sidecar_path

VW_ARGUMENTS = "--oaa 10"
TAUGHT = 5


@pytest.fixture(scope="module")
def vw_digits(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> Path:
    """VW ``--oaa 10`` (labels, no probabilities) trained on 1,000 digits, labelled 1 to 10."""
    rows, labels = digits
    workspace = pyvw.Workspace(f"--quiet {VW_ARGUMENTS}")
    for row, label in zip(rows[:1000].tolist(), labels[:1000].tolist(), strict=True):
        workspace.learn(f"{label + 1} {dense_example(row)}")
    path = tmp_path_factory.mktemp("vw") / "digits.vw"
    workspace.save(str(path))
    workspace.finish()
    sidecar_path(path).write_text(VW_ARGUMENTS + "\n")
    return path


def app(name: str, classes: int, model: str = "vw") -> Table:
    """An exp4 app over ``model`` with ``classes`` classes that forwards its feedback."""
    return app_table(name, [model], 10000, policy="exp4", classes=classes, forward_feedback=True)


@pytest.fixture(scope="module")
def forwarding(
    tmp_path_factory: pytest.TempPathFactory, vw_digits: Path
) -> Iterator[GatewayProcess]:
    """A real gateway over a real VW wrapper, with a 10-class app and a 12-class one."""
    vw = version_table("vw", vw_digits, options={"input": "dense", "n_features": "64"})
    text = config_text(
        gateway={"admin_token": ADMIN_TOKEN},
        models=[model_table("vw", vw)],
        apps=[app("digits", 10), app("wide", 12)],
    )
    config = write_config(tmp_path_factory.mktemp("forwarding"), text)
    with start_gateway(config) as process:
        yield process


@pytest.fixture
def client(forwarding: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=forwarding.url, timeout=60) as client:
        yield client


def app_says(client: httpx.Client, row: np.ndarray, app: str = "digits") -> int:
    answer = client.post(f"/apps/{app}/predict", json={"input": row.tolist()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["default"] is False
    output: int = answer.json()["output"]
    return output


def vw_says(client: httpx.Client, row: np.ndarray) -> int:
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP64", "data": row.tolist()}
    answer = client.post("/v2/models/vw/infer", json={"inputs": [tensor]})
    assert answer.status_code == 200, answer.text
    label: int = answer.json()["outputs"][0]["data"][0]
    return label


def teach(client: httpx.Client, row: np.ndarray, label: int, app: str = "digits") -> Any:
    answer = client.post(f"/apps/{app}/feedback", json={"input": row.tolist(), "label": label})
    assert answer.status_code == 200, answer.text
    assert answer.json()["recorded"] is True
    return answer.json()


def test_answers_are_read_in_the_apps_numbering(client: httpx.Client, digits: Any) -> None:
    rows, labels = digits
    held_out = range(1200, 1240)
    by_app = [app_says(client, rows[i]) for i in held_out]
    by_vw = [vw_says(client, rows[i]) for i in held_out]
    assert by_app == [label - 1 for label in by_vw], "VW's class k is the app's class k - 1"
    accuracy = np.mean(np.array(by_app) == labels[held_out.start : held_out.stop])
    assert accuracy > 0.7


def test_forwarded_feedback_moves_the_model_to_the_apps_label(
    client: httpx.Client, digits: Any
) -> None:
    rows, labels = digits
    index = next(
        i
        for i in range(1300, 1400)
        if labels[i] != TAUGHT and vw_says(client, rows[i]) == labels[i] + 1
    )
    row = rows[index]
    for _ in range(40):
        receipt = teach(client, row, TAUGHT)
        assert receipt["forwarded"] == {"vw": {"label": TAUGHT + 1, "replicas": 1}}
    assert vw_says(client, row) == TAUGHT + 1
    assert app_says(client, row) == TAUGHT


def test_class_zero_reaches_the_model_as_its_first_class(client: httpx.Client, digits: Any) -> None:
    receipt = teach(client, digits[0][1500], 0)
    assert receipt["forwarded"] == {"vw": {"label": 1, "replicas": 1}}


def test_a_label_the_model_cannot_take_is_reported(client: httpx.Client, digits: Any) -> None:
    receipt = teach(client, digits[0][1501], 11, app="wide")
    assert receipt["forwarded"] == {
        "vw": {
            "label": None,
            "replicas": 0,
            "error": "the app's class 11 has no counterpart in the model, which learns "
            "10 classes (classes 1 to 10)",
        }
    }
    assert teach(client, digits[0][1501], 9, app="wide")["forwarded"]["vw"]["label"] == 10


def test_a_label_the_wrapper_refuses_is_reported(
    tmp_path: Path, softmax_model: Path, local_models: LocalModels, digits: Any
) -> None:
    learner = local_models.serve("learner", "ketch_conformance.reference:plugin", softmax_model)
    text = config_text(
        models=[model_table("learner", version_table(addresses=[learner]))],
        apps=[app("wide", 12, model="learner")],
    )
    row = digits[0][17].astype(np.float32).tolist()
    with gateway_client(text, tmp_path, local_models) as gateway:
        refused = gateway.post("/apps/wide/feedback", json={"input": row, "label": 11})
        taken = gateway.post("/apps/wide/feedback", json={"input": row, "label": 3})
    assert refused.status_code == 200, refused.text
    assert refused.json()["forwarded"] == {
        "learner": {
            "label": 11,
            "replicas": 0,
            "error": "the model refused it: labels: class indices must be in [0, 10)",
        }
    }
    assert taken.json()["forwarded"] == {"learner": {"label": 3, "replicas": 1}}


# --- the mapping on its own -----------------------------------------------------------------

ONE_TO_TEN = LabelSpec("classes", tuple(range(1, 11)))


def test_labels_map_to_the_models_numbering() -> None:
    mapping = LabelMapping("classification", 10, ONE_TO_TEN)
    assert [mapping.to_model(i) for i in (0, 5, 9)] == [1, 6, 10]
    assert LabelMapping("classification", 2, LabelSpec("classes", (-1, 1))).to_model(0) == -1
    assert LabelMapping("classification", 10, None).to_model(4) == 4
    assert LabelMapping("regression", 0, LabelSpec("numbers")).to_model(2) == 2.0
    refusals = [
        (LabelMapping("classification", 12, ONE_TO_TEN), 10, "has no counterpart"),
        (LabelMapping("classification", 3, LabelSpec("bandit")), 1, "not the classes"),
        (LabelMapping("classification", 3, LabelSpec("numbers")), 1, "a number per row"),
        (LabelMapping("regression", 0, ONE_TO_TEN), 1.5, "not a regression's numbers"),
    ]
    for mapping, label, words in refusals:
        with pytest.raises(LabelRefused, match=words):
            mapping.to_model(label)


def test_a_models_classes_are_read_as_the_apps() -> None:
    spec = TensorSpec("label", "INT64", (-1,))
    answers = {"label": np.array([1, 6, 10, 11])}
    read = AnswerReader("classification", 10).read(spec, answers, ONE_TO_TEN)
    assert read.argmax(axis=1).tolist()[:3] == [0, 5, 9]
    assert read[3].tolist() == [0.0] * 10, "a class the app has no index for counts for none"
    binary = AnswerReader("classification", 2).read(
        spec, {"label": np.array([-1, 1])}, LabelSpec("classes", (-1, 1))
    )
    assert binary.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    undeclared = AnswerReader("classification", 10).read(spec, {"label": np.array([3])})
    assert undeclared.argmax() == 3
