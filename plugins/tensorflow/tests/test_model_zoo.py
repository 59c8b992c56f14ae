"""The shapes people build in Keras, each saved as ``.keras``, served by a real ``ketch serve``
and compared with the model in process: the next common shape that breaks is caught here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorflow_test_models import (
    SEQUENTIAL_VARIANTS,
    build_image_and_hint,
    build_sequential,
    image_and_hint_rows,
)

from ketch import WrapperClient, WrapperProcess, start_wrapper

ZOO = (*(f"sequential-{variant}" for variant in SEQUENTIAL_VARIANTS), "functional", "two-inputs")
Digits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def build(kind: str, digits: Digits, digits_mlp: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """The model ``kind`` names, and rows for it by input name (the served names)."""
    train_rows, _, test_rows, _ = digits
    if kind.startswith("sequential-"):
        model = build_sequential(kind.removeprefix("sequential-"), train_rows[:64])
        return model, {"": test_rows[:40]}
    if kind == "functional":
        return digits_mlp, {"pixels": test_rows[:40]}
    return build_image_and_hint(), image_and_hint_rows(12, seed=3)


def in_process(model: Any, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's own outputs by name, as the plugin names them."""
    arrays = list(rows.values())
    result = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    if isinstance(result, dict):
        return {name: value.numpy() for name, value in result.items()}
    if isinstance(result, list | tuple):
        return {
            name: value.numpy() for name, value in zip(("score", "classes"), result, strict=True)
        }
    return {"probabilities": result.numpy()}


@pytest.fixture(scope="module", params=ZOO)
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    digits: Digits,
    digits_mlp: Any,
) -> Iterator[tuple[Any, dict[str, np.ndarray], WrapperProcess]]:
    model, rows = build(request.param, digits, digits_mlp)
    path: Path = tmp_path_factory.mktemp("keras-zoo") / f"{request.param}.keras"
    model.save(path)
    with start_wrapper("tensorflow", path, echo_stderr=False) as process:
        yield model, rows, process


def test_served_model_answers_as_keras(
    served: tuple[Any, dict[str, np.ndarray], WrapperProcess],
) -> None:
    model, rows, process = served
    expected = in_process(model, rows)
    with WrapperClient(process.address, model=process.ready.model) as client:
        metadata = client.model_metadata()
        names = [spec.name for spec in metadata.inputs]
        if "" in rows:  # a Sequential model's input is named after its input layer
            rows = {names[0]: rows[""]}
        assert names == list(rows)
        assert [spec.name for spec in metadata.outputs] == list(expected)
        outputs = client.infer(rows)
    for name, want in expected.items():
        np.testing.assert_allclose(outputs[name], want, rtol=1e-4, atol=1e-6)
