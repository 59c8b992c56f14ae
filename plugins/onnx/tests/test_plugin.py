"""The ONNX plugin in process: element types, fixed batches, options, legacy graphs and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from onnx_zoo import ARCHITECTURES, export, export_module, reference

from ketch import (
    Framework,
    InvalidInputError,
    ModelLoadError,
    ModelRuntime,
    ModelSpec,
    select_framework,
)
from ketch_onnx import OnnxModel
from ketch_onnx.graph import prepare_graph


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("onnx")


def load(framework: Framework, path: Path, **options: str) -> ModelRuntime:
    return ModelRuntime.load(framework, ModelSpec.from_path(path, options=options))


def one_node(
    path: Path, op_type: str, element: int, shape: list[int | str], domain: str = ""
) -> Path:
    """A graph of one node from ``x`` to ``y``, both of ``element`` and ``shape``."""
    graph = helper.make_graph(
        [helper.make_node(op_type, ["x"], ["y"], domain=domain)],
        "one",
        [helper.make_tensor_value_info("x", element, shape)],
        [helper.make_tensor_value_info("y", element, shape)],
    )
    imports = [helper.make_opsetid("", 17)]
    if domain:
        imports.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def mlp_onnx(zoo: dict[tuple[str, str], Path]) -> Path:
    return zoo[("mlp", "torchscript")]


def test_float16_inputs_and_outputs_are_fp16(framework: Framework, tmp_path: Path) -> None:
    runtime = load(
        framework, one_node(tmp_path / "half.onnx", "Relu", TensorProto.FLOAT16, ["n", 3])
    )
    assert [(s.datatype, s.shape) for s in runtime.signature.inputs] == [("FP16", (-1, 3))]
    assert runtime.signature.outputs[0].datatype == "FP16"
    assert runtime.signature.capabilities.tolerance.rtol == 1e-2
    rows = np.array([[-1.5, 0.25, 3.0]], np.float16)
    np.testing.assert_array_equal(runtime.predict({"x": rows})["y"], np.maximum(rows, 0))


def test_bfloat16_travels_as_fp32(framework: Framework, bfloat16_onnx: Path) -> None:
    runtime = load(framework, bfloat16_onnx)
    assert [(s.name, s.datatype) for s in runtime.signature.inputs] == [("x", "FP32")]
    assert [(s.name, s.datatype) for s in runtime.signature.outputs] == [("y", "FP32")]
    rows = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    as_bfloat16 = torch.from_numpy(rows).bfloat16().float()
    expected = (torch.relu(as_bfloat16) * 2).bfloat16().float().numpy()
    np.testing.assert_array_equal(runtime.predict({"x": rows})["y"], expected)


def test_a_caffe2_era_graph_is_upgraded_and_split_into_single_rows(
    framework: Framework, caffe2_era: tuple[Path, dict[str, np.ndarray]]
) -> None:
    path, weights = caffe2_era
    runtime = load(framework, path)
    assert isinstance(runtime.model, OnnxModel)
    assert runtime.model.fixed_batch == 1
    assert runtime.signature.capabilities.max_batch is None
    pixels = np.random.default_rng(4).random((5, 64), dtype=np.float32)
    w = {name: torch.from_numpy(array) for name, array in weights.items()}
    conv = torch.relu(
        torch.nn.functional.conv2d(
            torch.from_numpy(pixels).reshape(-1, 1, 8, 8), w["w"], w["b"], padding=1
        )
    )
    normed = torch.nn.functional.local_response_norm(conv, 3, alpha=1e-3, beta=0.75, k=1.0)
    pooled = torch.nn.functional.max_pool2d(normed, 2).flatten(1)
    expected = torch.softmax(pooled @ w["dense"].T + w["dense_bias"] + w["shift"], dim=1)
    np.testing.assert_allclose(
        runtime.predict({"pixels": pixels})["probabilities"], expected.numpy(), rtol=1e-5, atol=1e-6
    )


def test_batches_larger_than_a_fixed_batch_are_split(framework: Framework, fixed_mlp: Path) -> None:
    runtime = load(framework, fixed_mlp)
    assert runtime.signature.inputs[0].shape == (-1, 64)
    assert runtime.signature.capabilities.max_batch is None
    rows = np.random.default_rng(2).random((11, 64), dtype=np.float32)
    (expected,) = reference(ARCHITECTURES["mlp"].module(), {"pixels": rows})
    for count in (1, 4, 5, 11):
        outputs = runtime.predict({"pixels": rows[:count]})
        np.testing.assert_allclose(outputs["probabilities"], expected[:count], rtol=1e-5, atol=1e-6)


def test_a_fixed_batch_declared_as_max_batch(framework: Framework, fixed_mlp: Path) -> None:
    runtime = load(framework, fixed_mlp, fixed_batch="max_batch")
    assert runtime.signature.capabilities.max_batch == 4
    assert runtime.predict({"pixels": np.ones((3, 64), np.float32)})["probabilities"].shape == (
        3,
        10,
    )
    with pytest.raises(InvalidInputError, match=r"a batch of 5 rows exceeds .* maximum batch of 4"):
        runtime.predict({"pixels": np.ones((5, 64), np.float32)})


def test_an_empty_batch(framework: Framework, mlp_onnx: Path) -> None:
    outputs = load(framework, mlp_onnx).predict({"pixels": np.zeros((0, 64), np.float32)})
    assert outputs["probabilities"].shape == (0, 10)


def test_a_row_that_is_not_utf8_is_invalid_input(framework: Framework, words_onnx: Path) -> None:
    runtime = load(framework, words_onnx)
    rows = np.array([b"apple", b"\xff\xfe"], dtype=object)
    with pytest.raises(InvalidInputError, match=r"input 'word': row 1 is not UTF-8 text"):
        runtime.predict({"word": rows})


def test_session_options(framework: Framework, mlp_onnx: Path, tmp_path: Path) -> None:
    saved = tmp_path / "optimised.onnx"
    runtime = load(
        framework,
        mlp_onnx,
        intra_op_threads="1",
        inter_op_threads="2",
        optimization="basic",
        save_optimized=str(saved),
    )
    assert isinstance(runtime.model, OnnxModel)
    settings = runtime.model.session.get_session_options()
    assert settings.intra_op_num_threads == 1
    assert settings.inter_op_num_threads == 2
    assert str(settings.execution_mode).endswith("ORT_PARALLEL")
    assert str(settings.graph_optimization_level).endswith("ORT_ENABLE_BASIC")
    onnx.checker.check_model(onnx.load(str(saved)))
    again = load(framework, saved)
    rows = np.random.default_rng(3).random((6, 64), dtype=np.float32)
    np.testing.assert_allclose(
        again.predict({"pixels": rows})["probabilities"],
        runtime.predict({"pixels": rows})["probabilities"],
        rtol=1e-5,
        atol=1e-7,
    )


def test_float16_compute(framework: Framework, mlp_onnx: Path) -> None:
    prepared = prepare_graph(mlp_onnx, "float16")
    assert isinstance(prepared.source, bytes)
    assert TensorProto.FLOAT16 in {t.data_type for t in prepared.model.graph.initializer}
    assert prepare_graph(mlp_onnx, "auto").source == str(mlp_onnx)
    runtime = load(framework, mlp_onnx, dtype="float16")
    assert runtime.signature.inputs[0].datatype == "FP32"
    tolerance = runtime.signature.capabilities.tolerance
    rows = np.random.default_rng(5).random((16, 64), dtype=np.float32)
    (expected,) = reference(ARCHITECTURES["mlp"].module(), {"pixels": rows})
    outputs = runtime.predict({"pixels": rows})["probabilities"]
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, expected, rtol=tolerance.rtol, atol=tolerance.atol)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threads": "1"}, r"unknown option\(s\) threads .*known: intra_op_threads"),
        ({"intra_op_threads": "0"}, "intra_op_threads=0 must be at least 1"),
        ({"inter_op_threads": "two"}, "inter_op_threads='two' is not a whole number"),
        ({"optimization": "max"}, "optimization='max' is not one of all, extended, basic"),
        ({"dtype": "int8"}, "dtype='int8' is not one of auto, float32, float16, bfloat16"),
        ({"dtype": "bfloat16"}, "onnxruntime converts graphs to float16 only"),
        ({"fixed_batch": "pad"}, "fixed_batch='pad' is not one of split, max_batch"),
        ({"save_optimized": "/no/such/folder/x.onnx"}, "folder '/no/such/folder' does not exist"),
    ],
)
def test_bad_options_are_named(
    framework: Framework, mlp_onnx: Path, options: dict[str, str], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(framework, mlp_onnx, **options)


def test_a_file_that_is_not_onnx(framework: Framework, tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07 not a protobuf at all \xff\xff")
    with pytest.raises(ModelLoadError, match=r"broken\.onnx is not a readable ONNX model"):
        load(framework, path)


def test_a_truncated_file(framework: Framework, mlp_onnx: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.onnx"
    path.write_bytes(mlp_onnx.read_bytes()[:300])
    with pytest.raises(ModelLoadError, match=r"truncated\.onnx is not a readable ONNX model"):
        load(framework, path)


def test_an_operator_onnxruntime_lacks_is_named(framework: Framework, tmp_path: Path) -> None:
    path = one_node(
        tmp_path / "custom.onnx", "Frobnicate", TensorProto.FLOAT, ["n", 2], "com.example"
    )
    with pytest.raises(
        ModelLoadError, match=r"custom\.onnx: onnxruntime cannot load the graph: .*Frobnicate"
    ):
        load(framework, path)


def test_an_operator_without_a_kernel_for_its_type_is_named(
    framework: Framework, tmp_path: Path
) -> None:
    path = one_node(tmp_path / "bf16.onnx", "Relu", TensorProto.BFLOAT16, ["n", 2])
    with pytest.raises(
        ModelLoadError,
        match=r"bf16\.onnx: onnxruntime cannot load the graph: .*implementation for Relu",
    ):
        load(framework, path)


def test_output_shapes_come_from_onnxruntimes_shape_inference(
    framework: Framework, tmp_path: Path
) -> None:
    """An output the graph declares without a shape gets the one onnxruntime infers.

    onnxruntime knows its own operators (here ``com.microsoft.Gelu``), which onnx's
    shape inference does not.
    """
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")],
        "contrib",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    imports = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "contrib.onnx"))
    runtime = load(framework, tmp_path / "contrib.onnx")
    assert runtime.signature.outputs[0].shape == (-1, 3)
    rows = np.array([[-1.0, 0.0, 2.0]], np.float32)
    expected = torch.nn.functional.gelu(torch.from_numpy(rows)).numpy()
    np.testing.assert_allclose(runtime.predict({"x": rows})["y"], expected, rtol=1e-5, atol=1e-6)


def test_an_output_of_unknown_rank_takes_the_probes(framework: Framework, tmp_path: Path) -> None:
    """Two branches of different rank: no shape inference knows the output's rank."""
    axis = helper.make_tensor("axis", TensorProto.INT64, [1], [2])
    unsqueezed = helper.make_tensor_value_info("t", TensorProto.FLOAT, None)
    as_is = helper.make_tensor_value_info("e", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "limit"], ["huge"]),
        helper.make_node(
            "If",
            ["huge"],
            ["y"],
            then_branch=helper.make_graph(
                [helper.make_node("Unsqueeze", ["x", "axis"], ["t"])],
                "then",
                [],
                [unsqueezed],
                initializer=[axis],
            ),
            else_branch=helper.make_graph(
                [helper.make_node("Identity", ["x"], ["e"])], "else", [], [as_is]
            ),
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "branches",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("limit", TensorProto.FLOAT, [], [1e30])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "branches.onnx"))
    runtime = load(framework, tmp_path / "branches.onnx")
    assert runtime.signature.outputs[0].shape == (-1, -1)
    rows = np.array([[-1.0, 0.0, 2.0], [1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(runtime.predict({"x": rows})["y"], rows)


def test_an_input_without_dimensions_is_refused(framework: Framework, tmp_path: Path) -> None:
    path = one_node(tmp_path / "scalar.onnx", "Relu", TensorProto.FLOAT, [])
    with pytest.raises(ModelLoadError, match=r"input 'x' declares no dimensions"):
        load(framework, path)


def test_an_element_type_without_a_datatype_is_named(framework: Framework, tmp_path: Path) -> None:
    element = TensorProto.FLOAT8E4M3FN
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "float8",
        [helper.make_tensor_value_info("x", element, ["n", 2])],
        [helper.make_tensor_value_info("y", element, ["n", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(tmp_path / "float8.onnx"))
    with pytest.raises(
        ModelLoadError, match=r"input 'x' has element type float8e4m3fn, which Ketch cannot serve"
    ):
        load(framework, tmp_path / "float8.onnx")


def test_a_non_tensor_output_is_refused(framework: Framework, tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["y"])],
        "sequence",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_sequence_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "sequence.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match=r"output 'y' is a sequence_type, not a tensor"):
        load(framework, path)


def test_other_files_are_not_recognised(framework: Framework, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelLoadError, match="does not recognise the model"):
        load(framework, text)


def test_a_model_that_merges_rows_is_refused(framework: Framework, tmp_path: Path) -> None:
    class Total(torch.nn.Module):
        def forward(self, rows: torch.Tensor) -> torch.Tensor:
            return rows.sum(dim=0, keepdim=True)

    path = export_module(
        Total(), (torch.zeros(3, 4),), tmp_path / "total.onnx", (["x"], ["y"]), {"x": {0: "n"}}
    )
    with pytest.raises(ModelLoadError, match="one output row per input row"):
        load(framework, path)


def test_the_zoo_exports_are_deterministic(
    zoo: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    """The exports the other tests share come from seeded modules: a second export is the same."""
    again = export(ARCHITECTURES["cnn"], tmp_path / "cnn.onnx", dynamo=False)
    assert again.read_bytes() == zoo[("cnn", "torchscript")].read_bytes()
