"""The models people train with Vowpal Wabbit, each served by a real ``ketch serve`` and
compared with VW itself in process: the next common shape that breaks is caught here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from vw_test_models import TrainedModel

from ketch import WrapperClient, WrapperProcess, start_wrapper

# zoo entry: (trained model, serving options, the output that carries VW's prediction)
ZOO: dict[str, tuple[str, dict[str, str], str]] = {
    "oaa-dense": ("digits", {"input": "dense", "n_features": "64"}, "probabilities"),
    "oaa-labels-text": ("digits_labels", {}, "label"),
    "regression-text": ("regression", {}, "prediction"),
    "binary-text": ("binary", {}, "label"),
    "contextual-bandit": ("bandit", {"actions": "3"}, "probabilities"),
}


@pytest.fixture(scope="module", params=sorted(ZOO))
def served(
    request: pytest.FixtureRequest, vw_models: dict[str, TrainedModel]
) -> Iterator[tuple[str, WrapperProcess]]:
    name, options, _ = ZOO[request.param]
    served_options = {"learn": "false", **options}
    with start_wrapper("vw", vw_models[name].path, options=served_options) as process:
        yield request.param, process


def vw_itself(model: TrainedModel, output: str) -> np.ndarray:
    """What VW predicts for each test row, loaded from the same file with the same arguments."""
    reference = model.reference()
    lines = [text.decode() for text in model.test.texts.tolist()]
    predictions: list[Any] = [
        reference.predict(line.splitlines() if model.task == "bandit" else line) for line in lines
    ]
    reference.finish()
    if output == "label":
        return np.asarray(predictions, np.int64)
    return np.asarray(predictions, np.float32)


def test_served_model_answers_as_vw(
    served: tuple[str, WrapperProcess], vw_models: dict[str, TrainedModel]
) -> None:
    entry, process = served
    name, options, output = ZOO[entry]
    model = vw_models[name]
    rows = model.test.rows if options.get("input") == "dense" else model.test.texts
    with WrapperClient(process.address, model=process.ready.model) as client:
        outputs = client.infer({"input": rows})
        single = client.infer({"input": rows[:1]})
    expected = vw_itself(model, output)
    np.testing.assert_allclose(outputs[output], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(single[output], expected[:1], rtol=1e-6, atol=1e-7)
