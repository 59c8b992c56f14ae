"""``ketch serve`` with graphs that cannot load, and ``ketch serve torch`` handing graphs over."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_zoo import ARCHITECTURES, reference

from ketch import WrapperClient, start_wrapper


def _serve(plugin: str, path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ketch", "serve", plugin, str(path), "--port", "0"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _unsupported_graph(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
    )
    imports = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("plugin", ["onnx", "torch"])
def test_a_graph_that_cannot_load_exits_1_and_says_why(plugin: str, tmp_path: Path) -> None:
    malformed = tmp_path / "malformed.onnx"
    malformed.write_bytes(b"\x08\x07 not a protobuf \xff\xff")
    unsupported = _unsupported_graph(tmp_path / "unsupported.onnx")
    for path, problem in (
        (malformed, "is not a readable ONNX model"),
        (unsupported, "onnxruntime cannot load the graph: .*com.example:Frobnicate"),
    ):
        result = _serve(plugin, path)
        assert result.returncode == 1
        assert "ketch serve: cannot load model" in result.stderr
        assert str(path) in result.stderr
        assert re.search(problem, result.stderr), result.stderr


@pytest.mark.parametrize("name", ["transformer", "lstm-gru"])
def test_ketch_serve_torch_serves_what_its_converter_could_not(
    zoo: dict[tuple[str, str], Path], name: str
) -> None:
    """The issue's two failures: a Transformer encoder and an LSTM, through the torch plugin."""
    architecture = ARCHITECTURES[name]
    inputs = architecture.examples(np.random.default_rng(9), 5)
    with (
        start_wrapper("torch", zoo[(name, "torchscript")], options={"threads": "1"}) as process,
        WrapperClient(process.address) as client,
    ):
        assert client.model_metadata().platform == "onnxruntime_onnx"
        outputs = client.infer(inputs)
    (expected,) = reference(architecture.module(), inputs)
    np.testing.assert_allclose(next(iter(outputs.values())), expected, rtol=1e-4, atol=1e-5)
