from __future__ import annotations

import numpy as np
import pytest

from ketch import (
    Capabilities,
    ContractViolation,
    DimensionRange,
    InvalidInputError,
    LabelSpec,
    ModelSpec,
    Signature,
    TensorSpec,
    validate_inputs,
    validate_outputs,
)
from ketch.range_parameters import range_parameters, ranges_from_parameters

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


# --- dimension ranges -----------------------------------------------------------------------

STEPS = DimensionRange(2, 8, name="steps")
RANGED = Signature(
    inputs=(
        TensorSpec("image", "FP32", (-1, 3, -1, -1), (None, None, DimensionRange(16, 512), None)),
        TensorSpec("series", "FP32", (-1, -1), (None, STEPS)),
        TensorSpec("weights", "FP32", (-1, -1), (None, STEPS)),
    ),
    outputs=(TensorSpec("score", "FP32", (-1,)),),
)


def ranged_inputs(height: int = 16, series: int = 4, weights: int = 4) -> dict[str, np.ndarray]:
    return {
        "image": np.zeros((2, 3, height, 5), np.float32),
        "series": np.zeros((2, series), np.float32),
        "weights": np.zeros((2, weights), np.float32),
    }


def test_dimension_range_rules() -> None:
    assert DimensionRange(16, 512).describe() == "16 to 512"
    assert DimensionRange(2).describe() == "at least 2"
    assert DimensionRange(4, 4).describe() == "exactly 4"
    assert DimensionRange(2, 8).accepts(8)
    assert not DimensionRange(2, 8).accepts(1)
    with pytest.raises(ValueError, match="cannot be negative"):
        DimensionRange(-1)
    with pytest.raises(ValueError, match="maximum size 3 is below its minimum 4"):
        DimensionRange(4, 3)
    with pytest.raises(ValueError, match="2 ranges for the 3 dimensions"):
        TensorSpec("x", "FP32", (-1, -1, -1), (None, STEPS))
    with pytest.raises(ValueError, match="the batch dimension takes no range"):
        TensorSpec("x", "FP32", (-1, -1), (STEPS, None))
    with pytest.raises(ValueError, match="dimension 1 has the fixed size 4"):
        TensorSpec("x", "FP32", (-1, 4), (None, STEPS))
    spec = TensorSpec("x", "FP32", (-1, -1), [None, STEPS])  # type: ignore[arg-type]
    assert spec.ranges == (None, STEPS)
    assert spec.range_of(1) == STEPS
    assert TensorSpec("y", "FP32", (-1, -1)).range_of(1) is None
    assert spec.accepts_row_shape((8,))
    assert not spec.accepts_row_shape((9,))


def test_inputs_inside_the_ranges_pass() -> None:
    assert validate_inputs(RANGED, ranged_inputs(height=512, series=2, weights=2)) == 2


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            ranged_inputs(height=8),
            r"input 'image': dimension 2 is 8; the model takes 16 to 512 \(got shape "
            r"\[2, 3, 8, 5\]\)",
        ),
        (ranged_inputs(series=9, weights=9), r"input 'series': dimension 1 \('steps'\) is 9"),
        (
            ranged_inputs(series=3, weights=5),
            "input 'weights': dimension 1 is 5, but it shares the size 'steps' with input "
            "'series' dimension 1, which is 3",
        ),
    ],
)
def test_inputs_outside_the_ranges_are_named(inputs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        validate_inputs(RANGED, inputs)


def test_ranges_travel_as_tensor_parameters() -> None:
    image = RANGED.inputs[0]
    assert range_parameters(image) == {"dim_2_min": 16, "dim_2_max": 512}
    assert range_parameters(RANGED.inputs[1]) == {
        "dim_1_min": 2,
        "dim_1_max": 8,
        "dim_1_name": "steps",
    }
    assert range_parameters(RANGED.outputs[0]) == {}
    for spec in RANGED.inputs:
        assert ranges_from_parameters(spec.shape, range_parameters(spec)) == spec.ranges
    unbounded = TensorSpec("t", "INT64", (-1, -1), (None, DimensionRange(1)))
    assert range_parameters(unbounded) == {"dim_1_min": 1}
    assert ranges_from_parameters(unbounded.shape, {"dim_1_min": 1}) == unbounded.ranges


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"content_type": "np"},
        {"dim_0_min": 2},  # the batch dimension
        {"dim_1_min": 2},  # a fixed dimension
        {"dim_2_min": "sixteen"},
        {"dim_2_min": 16, "dim_2_max": 8},
        {"dim_2_min": True},
        {"dim_9_min": 1},
    ],
)
def test_parameters_that_are_no_ranges_are_ignored(parameters: dict[str, object]) -> None:
    assert ranges_from_parameters((-1, 3, -1), parameters) == ()


# --- labels ---------------------------------------------------------------------------------


def test_label_spec_rules() -> None:
    assert LabelSpec("classes", range(1, 11)).classes == tuple(range(1, 11))  # type: ignore[arg-type]
    assert LabelSpec("classes", tuple(range(1, 11))).describe() == "classes 1 to 10"
    assert LabelSpec("classes", (-1, 1)).describe() == "classes -1, 1"
    assert LabelSpec("numbers").describe() == "a number per row"
    assert "action index from 0" in LabelSpec("bandit").describe()
    with pytest.raises(ValueError, match="unknown label kind 'ranks'"):
        LabelSpec("ranks")
    with pytest.raises(ValueError, match="lists the classes it takes"):
        LabelSpec("classes")
    with pytest.raises(ValueError, match="of kind 'numbers' lists no classes"):
        LabelSpec("numbers", (1, 2))
    with pytest.raises(ValueError, match="listed twice"):
        LabelSpec("classes", (1, 1))
    with pytest.raises(ValueError, match="labels needs observe"):
        Capabilities(labels=LabelSpec("numbers"))
    assert Capabilities(observe=True, labels=LabelSpec("numbers")).labels == LabelSpec("numbers")
