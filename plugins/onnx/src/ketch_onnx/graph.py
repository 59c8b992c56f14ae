"""Reading an ONNX file into the graph that onnxruntime will run.

Three changes are made to the graph read from the file, each only when needed:

- a graph older than opset 7 (ONNX 1.2, before numpy-style broadcasting) is
  upgraded with onnx's own version converter, because onnxruntime guarantees
  opset 7 and later only;
- a bfloat16 input or output gets a Cast at the graph's boundary, so that it
  travels as FP32 (bfloat16 has no numpy dtype);
- ``dtype=float16`` converts the graph's floating-point weights and operators
  with onnxruntime's own converter, keeping the inputs' and outputs' types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, version_converter

from ketch import ModelLoadError

__all__ = [
    "MINIMUM_OPSET",
    "PreparedGraph",
    "cast_bfloat16_boundary",
    "convert_to_float16",
    "default_opset",
    "prepare_graph",
    "read_graph",
    "upgrade_legacy_opset",
]

MINIMUM_OPSET: Final = 7
"""The oldest opset of the default domain that onnxruntime guarantees to run."""
BOUNDARY_SUFFIX: Final = ".ketch_bfloat16"


@dataclass(frozen=True)
class PreparedGraph:
    """The graph to describe, and what to build sessions from.

    ``source`` is the file itself when the graph needs no change (onnxruntime then
    reads external data, and graphs over 2 GB, itself), else the changed graph's bytes.
    """

    model: onnx.ModelProto
    source: str | bytes


def read_graph(path: Path, external_data: bool = True) -> onnx.ModelProto:
    """The model in ``path``, with its external data (read relative to its folder) if asked."""
    try:
        model = onnx.load(str(path), load_external_data=external_data)
    except (DecodeError, OSError, ValueError, RuntimeError) as error:
        raise ModelLoadError(f"{path} is not a readable ONNX model: {error}") from error
    if not model.graph.output:
        raise ModelLoadError(f"{path} is not a readable ONNX model: its graph has no outputs")
    return model


def default_opset(model: onnx.ModelProto) -> int | None:
    """The version of the default (``ai.onnx``) operator set the model imports."""
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return int(opset.version)
    return None


def upgrade_legacy_opset(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    """``model`` itself, or upgraded to opset 7 when it is older."""
    opset = default_opset(model)
    if opset is None or opset >= MINIMUM_OPSET:
        return model
    try:
        return version_converter.convert_version(model, MINIMUM_OPSET)
    except Exception as error:  # the converter raises its own C++ error types
        raise ModelLoadError(
            f"{path}: the graph uses ONNX opset {opset}; onnxruntime runs opset "
            f"{MINIMUM_OPSET} and later, and onnx's version converter could not upgrade it "
            f"({error}); export it again with a newer exporter"
        ) from error


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        yield from attribute.graphs


def _rename_uses(graph: onnx.GraphProto, renamed: Mapping[str, str], outputs: bool) -> None:
    """Rename node inputs (and, with ``outputs``, node outputs) in ``graph`` and its subgraphs."""
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in renamed:
                node.input[index] = renamed[name]
        if outputs:
            for index, name in enumerate(node.output):
                if name in renamed:
                    node.output[index] = renamed[name]
        for subgraph in _subgraphs(node):
            _rename_uses(subgraph, renamed, outputs=False)


def cast_bfloat16_boundary(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its bfloat16 inputs and outputs taking and giving float32 instead."""
    graph = model.graph
    constants = {initializer.name for initializer in graph.initializer}
    inputs = [
        value
        for value in graph.input
        if value.name not in constants and value.type.tensor_type.elem_type == TensorProto.BFLOAT16
    ]
    outputs = [v for v in graph.output if v.type.tensor_type.elem_type == TensorProto.BFLOAT16]
    if not inputs and not outputs:
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    casts_in, casts_out, renamed = [], [], {}
    for value in graph.input:
        if any(value.name == wanted.name for wanted in inputs):
            inner = value.name + BOUNDARY_SUFFIX
            renamed[value.name] = inner
            value.type.tensor_type.elem_type = TensorProto.FLOAT
            cast = helper.make_node("Cast", [value.name], [inner], to=TensorProto.BFLOAT16)
            casts_in.append(cast)
    _rename_uses(graph, renamed, outputs=False)
    produced = {}
    for value in graph.output:
        if value.type.tensor_type.elem_type == TensorProto.BFLOAT16:
            inner = value.name + BOUNDARY_SUFFIX
            produced[value.name] = inner
            value.type.tensor_type.elem_type = TensorProto.FLOAT
            casts_out.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT))
    _rename_uses(graph, produced, outputs=True)
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def convert_to_float16(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    """``model`` computing in float16, its inputs and outputs keeping their types."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        converted: onnx.ModelProto = convert_float_to_float16(model, keep_io_types=True)
    except Exception as error:  # the converter raises whatever its graph walk meets
        raise ModelLoadError(f"{path}: cannot convert the graph to float16: {error}") from error
    return converted


def _has_bfloat16_boundary(model: onnx.ModelProto) -> bool:
    values = [*model.graph.input, *model.graph.output]
    return any(value.type.tensor_type.elem_type == TensorProto.BFLOAT16 for value in values)


def prepare_graph(path: Path, dtype: str) -> PreparedGraph:
    """The graph in ``path``, ready for onnxruntime (see the module's docstring)."""
    model = read_graph(path, external_data=False)
    opset = default_opset(model)
    legacy = opset is not None and opset < MINIMUM_OPSET
    if not legacy and not _has_bfloat16_boundary(model) and dtype != "float16":
        return PreparedGraph(model, str(path))
    model = cast_bfloat16_boundary(upgrade_legacy_opset(read_graph(path), path))
    if dtype == "float16":
        model = convert_to_float16(model, path)
    return PreparedGraph(model, model.SerializeToString())
