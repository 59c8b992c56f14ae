"""The ONNX converter against ONNX's reference evaluator, operator by operator, and whole models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch_onnx_graphs import OpCase, build_model, reference_outputs, save_model
from torch_test_models import save_onnx

from ketch import ModelLoadError
from ketch_torch.onnx_convert import read_onnx
from ketch_torch.onnx_ops import OPERATORS

RNG = np.random.default_rng(7)


def _floats(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


IMAGE = _floats(2, 4, 7, 6)
CASES = [
    OpCase("Gemm", {"a": _floats(5, 3)}, {"b": _floats(4, 3), "c": _floats(4)}, {"transB": 1}),
    OpCase(
        "Gemm",
        {"a": _floats(3, 5)},
        {"b": _floats(3, 4), "c": _floats(5, 4)},
        {"transA": 1, "alpha": 0.5, "beta": 2.0},
    ),
    OpCase("MatMul", {"a": _floats(2, 3, 4)}, {"b": _floats(4, 5)}),
    OpCase("Softmax", {"x": _floats(2, 3, 4)}, attributes={"axis": 1}, opset=13),
    OpCase("LogSoftmax", {"x": _floats(3, 5)}, opset=13),
    OpCase("Hardmax", {"x": _floats(3, 5)}, opset=13),
    OpCase("Relu", {"x": _floats(3, 4)}),
    OpCase("Sigmoid", {"x": _floats(3, 4)}),
    OpCase("Tanh", {"x": _floats(3, 4)}),
    OpCase("Exp", {"x": _floats(3, 4)}),
    OpCase("Erf", {"x": _floats(3, 4)}),
    OpCase("LeakyRelu", {"x": _floats(3, 4)}, attributes={"alpha": 0.2}),
    OpCase("Elu", {"x": _floats(3, 4)}, attributes={"alpha": 0.7}),
    OpCase("Selu", {"x": _floats(3, 4)}),
    OpCase("HardSigmoid", {"x": _floats(3, 4)}),
    OpCase("HardSwish", {"x": _floats(3, 4)}),
    OpCase("Softplus", {"x": _floats(3, 4)}),
    OpCase("Gelu", {"x": _floats(3, 4)}, attributes={"approximate": "tanh"}, opset=20),
    OpCase("PRelu", {"x": IMAGE}, {"slope": _floats(4, 1, 1)}),
    OpCase("Clip", {"x": _floats(3, 4)}, attributes={"min": -0.5, "max": 0.5}, opset=6),
    OpCase("Clip", {"x": _floats(3, 4)}, {"low": np.array(-0.2, np.float32)}, opset=13),
    OpCase("Add", {"a": _floats(2, 3, 4)}, {"b": _floats(4)}),
    OpCase("Sub", {"a": _floats(2, 3, 4)}, {"b": _floats(3, 1)}),
    OpCase("Mul", {"a": _floats(2, 3)}, {"b": _floats(2, 3)}),
    OpCase("Div", {"a": _floats(2, 3)}, {"b": np.full((2, 3), 1.5, np.float32)}),
    OpCase("Div", {"a": _ints(7, -7, 9)}, {"b": _ints(2, 2, -4)}),
    OpCase("Mod", {"a": _ints(7, -7, 9)}, {"b": _ints(3, 3, -4)}),
    OpCase("Mod", {"a": _floats(2, 3)}, {"b": np.full((2, 3), 0.7, np.float32)}, {"fmod": 1}),
    OpCase("Pow", {"a": np.abs(_floats(2, 3))}, {"b": np.array([2.0], np.float32)}),
    OpCase("Max", {"a": _floats(2, 3), "b": _floats(3)}),
    OpCase("Min", {"a": _floats(2, 3), "b": _floats(2, 3)}),
    OpCase("Sum", {"a": _floats(2, 3), "b": _floats(2, 3), "c": _floats(1, 3)}),
    OpCase("Mean", {"a": _floats(2, 3), "b": _floats(2, 3)}),
    OpCase("Equal", {"a": _ints(1, 2, 3)}, {"b": _ints(1, 0, 3)}),
    OpCase("Where", {"c": np.array([True, False, True])}, {"x": _floats(3), "y": _floats(3)}),
    OpCase("Cast", {"x": _floats(2, 3)}, attributes={"to": TensorProto.INT64}),
    OpCase("Flatten", {"x": IMAGE}, attributes={"axis": 2}),
    OpCase("Reshape", {"x": IMAGE}, {"shape": _ints(0, -1, 6)}),
    OpCase("Transpose", {"x": IMAGE}, attributes={"perm": [0, 2, 3, 1]}),
    OpCase("Squeeze", {"x": _floats(2, 1, 3, 1)}, {"axes": _ints(1, -1)}, opset=13),
    OpCase("Unsqueeze", {"x": _floats(2, 3)}, {"axes": _ints(0, -1)}, opset=13),
    OpCase("Unsqueeze", {"x": _floats(2, 3)}, attributes={"axes": [1]}, opset=11),
    OpCase("Concat", {"a": _floats(2, 3), "b": _floats(2, 2)}, attributes={"axis": 1}),
    OpCase("Gather", {"x": _floats(3, 5)}, {"i": _ints(-1, 0, 2)}, {"axis": 1}),
    OpCase(
        "Slice",
        {"x": _floats(4, 10)},
        {"starts": _ints(1), "ends": _ints(1000), "axes": _ints(1), "steps": _ints(3)},
        opset=13,
    ),
    OpCase("Shape", {"x": IMAGE}, attributes={"start": 1}),
    OpCase("Expand", {"x": _floats(3, 1)}, {"shape": _ints(2, 1, 4)}),
    OpCase("ConstantOfShape", {"shape": _ints(2, 3)}),
    OpCase("Pad", {"x": IMAGE}, {"pads": _ints(0, 0, 1, 2, 0, 0, 2, 1)}, {"mode": "reflect"}),
    OpCase("ReduceMean", {"x": IMAGE}, attributes={"axes": [2, 3], "keepdims": 0}, opset=13),
    OpCase("ReduceSum", {"x": IMAGE}, {"axes": _ints(1)}, opset=13),
    OpCase("ReduceMax", {"x": IMAGE}, {"axes": _ints(-1)}, opset=18),
    OpCase("ArgMax", {"x": _floats(3, 5)}, attributes={"axis": 1, "keepdims": 0}),
    OpCase(
        "ArgMin",
        {"x": np.array([[1.0, 0.0, 0.0, 2.0]], np.float32)},
        attributes={"axis": 1, "select_last_index": 1},
    ),
    OpCase(
        "Conv", {"x": IMAGE}, {"w": _floats(6, 4, 3, 3), "b": _floats(6)}, {"pads": [1, 1, 1, 1]}
    ),
    OpCase(
        "Conv",
        {"x": IMAGE},
        {"w": _floats(4, 2, 3, 2)},
        {"auto_pad": "SAME_UPPER", "strides": [2, 2], "group": 2},
    ),
    OpCase("Conv", {"x": IMAGE}, {"w": _floats(3, 4, 2, 2)}, {"pads": [0, 1, 1, 0]}),
    OpCase(
        "MaxPool",
        {"x": IMAGE},
        attributes={
            "kernel_shape": [3, 3],
            "strides": [2, 2],
            "pads": [1, 1, 1, 1],
            "ceil_mode": 1,
        },
    ),
    OpCase(
        "MaxPool",
        {"x": IMAGE},
        attributes={"kernel_shape": [2, 2], "strides": [1, 2], "pads": [0, 0, 1, 1]},
    ),
    OpCase(
        "AveragePool",
        {"x": IMAGE},
        attributes={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    ),
    OpCase("AveragePool", {"x": IMAGE}, attributes={"kernel_shape": [2, 3], "pads": [0, 0, 1, 2]}),
    OpCase("GlobalAveragePool", {"x": IMAGE}),
    OpCase("GlobalMaxPool", {"x": IMAGE}),
    OpCase(
        "BatchNormalization",
        {"x": IMAGE},
        {"s": _floats(4), "b": _floats(4), "m": _floats(4), "v": np.abs(_floats(4)) + 0.5},
        {"epsilon": 1e-3},
    ),
    OpCase("InstanceNormalization", {"x": IMAGE}, {"s": _floats(4), "b": _floats(4)}),
    OpCase("LayerNormalization", {"x": _floats(3, 5)}, {"s": _floats(5), "b": _floats(5)}),
    OpCase("Dropout", {"x": _floats(3, 4)}, opset=13),
    OpCase("Identity", {"x": _floats(3, 4)}),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_operator_matches_the_onnx_reference(case: OpCase, tmp_path: Path) -> None:
    model = build_model(case)
    expected = reference_outputs(model, case.inputs)
    module = read_onnx(save_model(model, tmp_path / "case.onnx")).module
    with torch.inference_mode():
        got = module(*(torch.from_numpy(array.copy()) for array in case.inputs.values()))
    assert len(got) == len(expected)
    for tensor, want in zip(got, expected, strict=True):
        assert tuple(tensor.shape) == want.shape
        np.testing.assert_allclose(tensor.numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [3, 4])
def test_lrn_follows_the_specification(size: int, tmp_path: Path) -> None:
    """Checked by hand: ONNX 1.23's reference LRN loops over the batch axis, not the channels."""
    attributes = {"size": size, "alpha": 0.02, "beta": 0.75, "bias": 2.0}
    case = OpCase("LRN", {"x": IMAGE}, attributes=attributes)
    channels = IMAGE.shape[1]
    expected = np.empty_like(IMAGE)
    for channel in range(channels):
        low = max(0, channel - (size - 1) // 2)
        high = min(channels - 1, channel + -(-(size - 1) // 2))
        square_sum = (IMAGE[:, low : high + 1] ** 2).sum(axis=1)
        expected[:, channel] = IMAGE[:, channel] / (2.0 + 0.02 / size * square_sum) ** 0.75
    module = read_onnx(save_model(build_model(case), tmp_path / "lrn.onnx")).module
    with torch.inference_mode():
        (got,) = module(torch.from_numpy(IMAGE.copy()))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_softmax_before_opset_13_works_on_the_input_flattened_to_two_dimensions(
    tmp_path: Path,
) -> None:
    x = _floats(2, 3, 4)
    case = OpCase("Softmax", {"x": x}, attributes={"axis": 1}, opset=11)
    flat = np.exp(x.reshape(2, 12) - x.reshape(2, 12).max(axis=1, keepdims=True))
    expected = (flat / flat.sum(axis=1, keepdims=True)).reshape(x.shape)
    module = read_onnx(save_model(build_model(case), tmp_path / "softmax.onnx")).module
    with torch.inference_mode():
        (got,) = module(torch.from_numpy(x.copy()))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_graph_inputs_make_the_signature(tmp_path: Path) -> None:
    node = helper.make_node("Add", ["a", "b"], ["sum"])
    graph = helper.make_graph(
        [node],
        "two",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", "width"]),
        ],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["n", 3])],
    )
    program = read_onnx(save_model(helper.make_model(graph), tmp_path / "two.onnx"))
    assert program.inputs is not None
    assert [(spec.name, spec.datatype, spec.shape) for spec in program.inputs] == [
        ("a", "FP32", (-1, 3)),
        ("b", "FP32", (-1, -1)),
    ]
    assert program.output_names == ("sum",)
    assert program.fixed_batch is None


def test_a_fixed_first_dimension_is_the_exported_batch_size(tmp_path: Path) -> None:
    model = build_model(OpCase("Relu", {"x": _floats(1, 4)}))
    program = read_onnx(save_model(model, tmp_path / "one.onnx"))
    assert program.fixed_batch == 1


def _caffe2_style_model() -> onnx.ModelProto:
    """What Caffe2-era converters wrote: opset 6, broadcast attributes, 2-D softmax, LRN."""
    weights = RNG.standard_normal((4, 1, 3, 3)).astype(np.float32)
    bias = RNG.standard_normal(4).astype(np.float32)
    dense = RNG.standard_normal((10, 4 * 4 * 4)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["pixels", "image_shape"], ["image"]),
        helper.make_node("Conv", ["image", "w"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["conv", "bias"], ["biased"], broadcast=1, axis=1),
        helper.make_node("Relu", ["biased"], ["relu"]),
        helper.make_node("LRN", ["relu"], ["normed"], size=3, alpha=1e-3, beta=0.75, bias=1.0),
        helper.make_node("MaxPool", ["normed"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node(
            "Gemm", ["flat", "dense", "dense_bias"], ["scores"], transB=1, broadcast=1
        ),
        helper.make_node("Softmax", ["scores"], ["probabilities"]),
    ]
    graph = helper.make_graph(
        nodes,
        "caffe2_style",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])],
        initializer=[
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(dense, "dense"),
            numpy_helper.from_array(np.full(10, 0.1, np.float32), "dense_bias"),
            numpy_helper.from_array(np.array([-1, 1, 8, 8], np.int64), "image_shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
    model.ir_version = 3
    return model


def test_caffe2_era_graph_runs_like_its_torch_twin(tmp_path: Path) -> None:
    model = _caffe2_style_model()
    initializers = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer
    }
    pixels = torch.from_numpy(RNG.random((3, 64), dtype=np.float32))
    image = pixels.reshape(-1, 1, 8, 8)
    conv = torch.relu(
        nn.functional.conv2d(image, initializers["w"], padding=1)
        + initializers["bias"].reshape(1, 4, 1, 1)
    )
    normed = nn.functional.local_response_norm(conv, 3, alpha=1e-3, beta=0.75, k=1.0)
    pooled = nn.functional.max_pool2d(normed, 2)
    expected = torch.softmax(pooled.flatten(1) @ initializers["dense"].t() + 0.1, dim=1)
    program = read_onnx(save_model(model, tmp_path / "caffe2.onnx"))
    assert program.fixed_batch == 1
    with torch.inference_mode():
        (got,) = program.module(pixels)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_an_exported_convolutional_network_matches_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(3)
    network = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10),
        nn.LogSoftmax(dim=1),
    ).eval()
    pixels = torch.rand(5, 64)
    path = save_onnx(network, [pixels[:2]], tmp_path / "cnn.onnx", ["pixels"], ["scores"])
    program = read_onnx(path)
    with torch.inference_mode():
        (got,) = program.module(pixels)
        expected = network(pixels)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_unsupported_operators_are_named_at_load(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("NonMaxSuppression", ["r", "r"], ["boxes"]),
        helper.make_node("Frobnicate", ["boxes"], ["y"], domain="com.example"),
    ]
    graph = helper.make_graph(
        nodes,
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
    )
    path = save_model(model, tmp_path / "unsupported.onnx")
    with pytest.raises(
        ModelLoadError,
        match=r"unsupported\.onnx: PyTorch cannot run the ONNX operator\(s\) "
        r"NonMaxSuppression, com\.example\.Frobnicate",
    ):
        read_onnx(path)


def test_an_unsupported_feature_of_a_known_operator_is_named(tmp_path: Path) -> None:
    case = OpCase("MaxPool", {"x": IMAGE}, attributes={"kernel_shape": [2, 2]}, outputs=2)
    path = save_model(build_model(case), tmp_path / "indices.onnx")
    with pytest.raises(ModelLoadError, match="MaxPool with its Indices output not supported"):
        read_onnx(path)


def test_the_readme_lists_the_supported_operators() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    listed = readme.split("<!-- supported-onnx-operators -->")[1].split("```")[1]
    assert sorted(name.strip() for name in listed.split(",")) == sorted([*OPERATORS, "Constant"])


def test_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07 not a protobuf at all \xff\xff")
    with pytest.raises(ModelLoadError, match=r"broken\.onnx is not a readable ONNX model"):
        read_onnx(path)
