from __future__ import annotations

import numpy as np
import pytest

from ketch import (
    Capabilities,
    ContractViolation,
    InvalidInputError,
    ModelSpec,
    Signature,
    TensorSpec,
    validate_inputs,
    validate_outputs,
)

SIGNATURE = Signature(
    inputs=(TensorSpec("pixels", "FP32", (-1, 4)), TensorSpec("mask", "BOOL", (-1, -1))),
    outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("scores", "FP32", (-1, 3))),
)


def good_inputs(rows: int = 2) -> dict[str, np.ndarray]:
    return {"pixels": np.zeros((rows, 4), np.float32), "mask": np.ones((rows, 7), bool)}


def test_tensor_spec_rules() -> None:
    with pytest.raises(ValueError, match="unknown datatype 'FLOAT'"):
        TensorSpec("x", "FLOAT", (-1,))
    with pytest.raises(ValueError, match="must start with the batch dimension -1"):
        TensorSpec("x", "FP32", (3, 4))
    with pytest.raises(ValueError, match="size below -1"):
        TensorSpec("x", "FP32", (-1, -2))
    spec = TensorSpec("x", "FP32", [-1, 2])  # type: ignore[arg-type]
    assert spec.shape == (-1, 2)
    assert spec.row_shape == (2,)


def test_signature_rules() -> None:
    with pytest.raises(ValueError, match="duplicate input names: x"):
        Signature(
            inputs=(TensorSpec("x", "FP32", (-1,)), TensorSpec("x", "FP32", (-1,))),
            outputs=(TensorSpec("y", "FP32", (-1,)),),
        )
    with pytest.raises(ValueError, match="at least one output"):
        Signature(inputs=(TensorSpec("x", "FP32", (-1,)),), outputs=())
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        Capabilities(max_batch=0)
    with pytest.raises(ValueError, match="persists_observations needs observe"):
        Capabilities(persists_observations=True)
    assert Capabilities(observe=True, persists_observations=True).persists_observations


def test_model_spec_options() -> None:
    spec = ModelSpec.from_path("/models/digits.skops", options={"trust_pickle": "Yes", "k": "v"})
    assert spec.name == "digits"
    assert spec.flag("trust_pickle")
    assert not spec.flag("missing")
    assert spec.option("k") == "v"
    with pytest.raises(TypeError):
        spec.options["k"] = "w"  # type: ignore[index]


def test_validate_inputs_accepts_and_counts_rows() -> None:
    assert validate_inputs(SIGNATURE, good_inputs(5)) == 5
    assert validate_inputs(SIGNATURE, good_inputs(0)) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pixels": None}, "expected inputs 'pixels', 'mask'; missing 'pixels'"),
        ({"extra": np.zeros(2)}, "unknown 'extra'"),
        ({"pixels": np.zeros((2, 4))}, "input 'pixels': expected datatype FP32, got FP64"),
        ({"pixels": np.zeros((2, 5), np.float32)}, r"expected shape \[-1, 4\], got \[2, 5\]"),
        ({"pixels": np.zeros(4, np.float32)}, r"expected shape \[-1, 4\], got \[4\]"),
        ({"mask": np.ones((3, 7), bool)}, "input 'mask' has 3 rows but the other inputs have 2"),
        ({"pixels": [[0.0] * 4] * 2}, "expected a numpy array, got list"),
        ({"pixels": np.zeros((2, 4), np.complex64)}, "got complex64"),
    ],
)
def test_validate_inputs_says_what_was_expected(change: dict[str, object], message: str) -> None:
    inputs: dict[str, object] = dict(good_inputs())
    for name, value in change.items():
        if value is None:
            del inputs[name]
        else:
            inputs[name] = value
    with pytest.raises(InvalidInputError, match=message):
        validate_inputs(SIGNATURE, inputs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"label": np.zeros(2, np.int64)}, "did not return the declared output 'scores'"),
        (
            {"label": np.zeros(1, np.int64), "scores": np.zeros((2, 3), np.float32)},
            "returned 1 rows for output 'label' from a batch of 2",
        ),
        (
            {"label": np.zeros(2, np.int32), "scores": np.zeros((2, 3), np.float32)},
            "returned datatype INT32 for output 'label', declared INT64",
        ),
        (
            {"label": np.zeros(2, np.int64), "scores": np.zeros((2, 4), np.float32)},
            r"returned shape \[2, 4\] for output 'scores'",
        ),
        ({"label": [0, 1], "scores": np.zeros((2, 3), np.float32)}, "returned list for output"),
    ],
)
def test_validate_outputs_names_the_contract_breach(
    outputs: dict[str, object], message: str
) -> None:
    with pytest.raises(ContractViolation, match=message):
        validate_outputs(SIGNATURE, outputs, 2)  # type: ignore[arg-type]


def test_validate_outputs_keeps_declared_order() -> None:
    outputs = {"scores": np.zeros((2, 3), np.float32), "label": np.zeros(2, np.int64), "x": 1}
    assert list(validate_outputs(SIGNATURE, outputs, 2)) == ["label", "scores"]  # type: ignore[arg-type]
