"""The zoo: real architectures in PyTorch, exported to ONNX as users export them.

Each entry is a small, seeded module with example inputs and the dynamic axes a
user would declare; :func:`export` writes it with ``torch.onnx.export``, through
TorchScript (``dynamo=False``) or through ``torch.export`` (``dynamo=True``, which
needs the ``onnxscript`` package). Besides them, graphs made with the ONNX helper
API: a string model, a bfloat16 model and a Caffe2-era (opset 6) network.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

__all__ = [
    "ARCHITECTURES",
    "DYNAMO_AVAILABLE",
    "WORDS",
    "ZOO",
    "Architecture",
    "bfloat16_graph",
    "caffe2_era_graph",
    "export",
    "export_module",
    "reference",
    "string_graph",
]

DYNAMO_AVAILABLE = importlib.util.find_spec("onnxscript") is not None
"""Whether torch.onnx's dynamo exporter can run here (it needs onnxscript)."""


class Mlp(nn.Module):
    """64 → 32 → 10 with a softmax: the digits classifier's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10), nn.Softmax(dim=1)
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class probabilities."""
        return self.layers(pixels)  # type: ignore[no-any-return]


class Cnn(nn.Module):
    """Two convolutions with batch norm, max and average pooling, then a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AvgPool2d(2),
        )
        self.head = nn.Linear(8 * 2 * 2, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Scores for ten classes."""
        return self.head(self.features(image).flatten(1))  # type: ignore[no-any-return]


class Recurrent(nn.Module):
    """An LSTM then a GRU over a sequence; the GRU's last step is the output."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 12, batch_first=True)
        self.gru = nn.GRU(12, 6, batch_first=True)

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        """The GRU's state after the last step."""
        hidden, _ = self.lstm(steps)
        states, _ = self.gru(hidden)
        return states[:, -1]  # type: ignore[no-any-return]


class Encoder(nn.Module):
    """A Transformer encoder layer (attention, feed-forward, layer norms) and a pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Three scores per sequence."""
        return self.head(self.layer(tokens).mean(dim=1))  # type: ignore[no-any-return]


class TwoInTwoOut(nn.Module):
    """Pixels and a boolean mask in; scores and how many pixels the mask kept out."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(64, 3)

    def forward(
        self, pixels: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of the kept pixels, and the count kept."""
        return self.score(pixels * mask.to(pixels.dtype)), mask.sum(dim=1)


class TokenConv(nn.Module):
    """Token ids of any length: an embedding, a 1-D convolution, and a mean over the sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.conv = nn.Conv1d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Four scores per sequence."""
        features = torch.relu(self.conv(self.embed(ids).transpose(1, 2)))
        return self.head(features.mean(dim=2))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Architecture:
    """A zoo model: how to build it, its inputs' names and examples, and its dynamic axes.

    ``dynamic`` maps an input to the axes that vary (0, the batch, always); the
    dynamo exporter is given ``dynamo_dynamic`` instead where it cannot keep
    them all (an LSTM's sequence length, say).
    """

    name: str
    build: Callable[[], nn.Module]
    examples: Callable[[np.random.Generator, int], dict[str, np.ndarray]]
    outputs: tuple[str, ...]
    dynamic: Mapping[str, tuple[int, ...]]
    dynamo_dynamic: Mapping[str, tuple[int, ...]] | None = None
    notes: str = field(default="")

    def module(self) -> nn.Module:
        """The module, seeded, in evaluation mode."""
        torch.manual_seed(sum(map(ord, self.name)))
        module = self.build().eval()
        return module


def _examples_pixels(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    return {"pixels": rng.random((rows, 64), dtype=np.float32)}


def _examples_image(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    return {"image": rng.random((rows, 1, 8, 8), dtype=np.float32)}


def _examples_steps(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    return {"steps": rng.standard_normal((rows, 5, 8), dtype=np.float32)}


def _examples_tokens(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    return {"tokens": rng.standard_normal((rows, 6, 16), dtype=np.float32)}


def _examples_masked(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    return {
        "pixels": rng.random((rows, 64), dtype=np.float32),
        "mask": rng.random((rows, 64)) > 0.3,
    }


def _examples_ids(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    return {"ids": rng.integers(0, 16, (rows, 7), dtype=np.int64)}


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("mlp", Mlp, _examples_pixels, ("probabilities",), {"pixels": (0,)}),
        Architecture("cnn", Cnn, _examples_image, ("scores",), {"image": (0,)}),
        Architecture(
            "lstm-gru",
            Recurrent,
            _examples_steps,
            ("state",),
            {"steps": (0, 1)},
            dynamo_dynamic={"steps": (0,)},
            notes="the dynamo exporter fixes the LSTM's sequence length",
        ),
        Architecture(
            "transformer",
            Encoder,
            _examples_tokens,
            ("scores",),
            {"tokens": (0,)},
            dynamo_dynamic={"tokens": (0, 1)},
            notes="the TorchScript exporter fixes the attention's sequence length",
        ),
        Architecture(
            "two-in-two-out",
            TwoInTwoOut,
            _examples_masked,
            ("scores", "kept"),
            {"pixels": (0,), "mask": (0,)},
        ),
        Architecture("dynamic-sequence", TokenConv, _examples_ids, ("scores",), {"ids": (0, 1)}),
    )
}


EXPORTERS = ("torchscript", "dynamo") if DYNAMO_AVAILABLE else ("torchscript",)
ZOO = [(name, exporter) for exporter in EXPORTERS for name in ARCHITECTURES]
"""Every (architecture, exporter) pair the tests export."""


def reference(module: nn.Module, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """What PyTorch computes for ``inputs``, as numpy arrays, one per output."""
    with torch.inference_mode():
        result = module(*(torch.from_numpy(np.array(array)) for array in inputs.values()))
    results = result if isinstance(result, tuple) else (result,)
    return [tensor.numpy() for tensor in results]


def export_module(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    names: tuple[list[str], list[str]],
    dynamic: dict[str, Any] | None = None,
    *,
    dynamo: bool = False,
) -> Path:
    """``torch.onnx.export`` with input and output ``names``, quietly (both exporters warn).

    ``dynamic`` is ``dynamic_axes`` for the TorchScript exporter, ``dynamic_shapes``
    for the dynamo exporter; None exports every size as the examples have it.
    """
    inputs, outputs = names
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=True,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=dynamic,
            )
        else:
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
            )
    return path


def export(arch: Architecture, path: Path, dynamo: bool) -> Path:
    """Export ``arch`` to ``path`` with torch.onnx's TorchScript or dynamo exporter."""
    examples = arch.examples(np.random.default_rng(0), 2)
    args = tuple(torch.from_numpy(array) for array in examples.values())
    names = (list(examples), list(arch.outputs))
    dynamic: dict[str, Any]
    if dynamo:
        axes = arch.dynamo_dynamic or arch.dynamic
        dynamic = {name: {axis: torch.export.Dim.AUTO for axis in axes[name]} for name in examples}
    else:
        dynamic = {
            name: {axis: f"{name}_{axis}" for axis in arch.dynamic[name]} for name in examples
        }
        dynamic.update({name: {0: "batch"} for name in arch.outputs})
    return export_module(arch.module(), args, path, names, dynamic, dynamo=dynamo)


WORDS = ("Apple", "banana", "CHERRY", "apple ", "durian")
"""Words the string graph knows (case aside); any other maps to -1."""


def string_graph() -> onnx.ModelProto:
    """Strings in, a normalised string and a class id out, built with the ONNX helper API."""
    nodes = [
        helper.make_node(
            "StringNormalizer", ["word"], ["lowered"], case_change_action="LOWER", locale="C"
        ),
        helper.make_node(
            "LabelEncoder",
            ["lowered"],
            ["label"],
            domain="ai.onnx.ml",
            keys_strings=["apple", "banana", "cherry"],
            values_int64s=[0, 1, 2],
            default_int64=-1,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "words",
        [helper.make_tensor_value_info("word", TensorProto.STRING, ["batch"])],
        [
            helper.make_tensor_value_info("lowered", TensorProto.STRING, ["batch"]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    model.ir_version = 8
    return model


def bfloat16_graph() -> onnx.ModelProto:
    """A bfloat16 input and output around float32 arithmetic: ``y = relu(x) * 2``."""
    nodes = [
        helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT),
        helper.make_node("Relu", ["x32"], ["r"]),
        helper.make_node("Mul", ["r", "two"], ["y32"]),
        helper.make_node("Cast", ["y32"], ["y"], to=TensorProto.BFLOAT16),
    ]
    graph = helper.make_graph(
        nodes,
        "bfloat16",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, ["batch", 4])],
        initializer=[numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def caffe2_era_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """What Caffe2-era converters wrote: opset 6, a fixed batch of 1, legacy broadcasting
    (``broadcast=1``), a two-dimensional softmax and LRN. Returns the graph and its weights."""
    weights = {
        "w": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "dense": rng.standard_normal((10, 64)).astype(np.float32),
        "dense_bias": rng.standard_normal(10).astype(np.float32),
        "shift": rng.standard_normal(10).astype(np.float32),
    }
    shape = np.array([-1, 1, 8, 8], np.int64)
    nodes = [
        helper.make_node("Reshape", ["pixels", "image_shape"], ["image"]),
        helper.make_node("Conv", ["image", "w", "b"], ["conv"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("LRN", ["relu"], ["normed"], size=3, alpha=1e-3, beta=0.75, bias=1.0),
        helper.make_node("MaxPool", ["normed"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node(
            "Gemm", ["flat", "dense", "dense_bias"], ["scores"], transB=1, broadcast=1
        ),
        helper.make_node("Add", ["scores", "shift"], ["shifted"], broadcast=1),
        helper.make_node("Softmax", ["shifted"], ["probabilities"]),
    ]
    graph = helper.make_graph(
        nodes,
        "caffe2_era",
        [
            helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 64]),
            *(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, array.shape)
                for name, array in weights.items()
            ),
            helper.make_tensor_value_info("image_shape", TensorProto.INT64, [4]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])],
        initializer=[
            *(numpy_helper.from_array(array, name) for name, array in weights.items()),
            numpy_helper.from_array(shape, "image_shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
    model.ir_version = 3
    return model, weights
