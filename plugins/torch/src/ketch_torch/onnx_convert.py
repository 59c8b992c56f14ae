"""ONNX graphs converted into PyTorch modules, so that PyTorch runs them on any device.

Caffe2 merged into PyTorch and its models, like Caffe's, travel as ONNX; this
converter is how the plugin serves them. It turns the graph's initializers and
constants into buffers (which move and cast with the module) and its nodes into
calls from the table in :mod:`ketch_torch.onnx_ops`. A graph with an operator outside that
table fails to load with a ModelLoadError naming every such operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from ketch import VARIABLE, ModelLoadError, TensorSpec
from ketch_torch.onnx_node import Kernel, OnnxNode, UnsupportedNodeError, torch_dtype_of_onnx
from ketch_torch.onnx_ops import OPERATORS
from ketch_torch.tensors import datatype_of_torch

__all__ = ["OnnxGraphModule", "OnnxProgram", "read_onnx"]

DEFAULT_DOMAINS: Final = ("", "ai.onnx")


@dataclass(frozen=True)
class _Step:
    kernel: Kernel
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class OnnxGraphModule(torch.nn.Module):
    """An ONNX graph as a PyTorch module: ``forward(*inputs)`` returns the outputs in order."""

    def __init__(
        self,
        input_names: Sequence[str],
        output_names: Sequence[str],
        constants: dict[str, torch.Tensor],
        steps: Sequence[_Step],
    ) -> None:
        super().__init__()
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        self._constant_buffers: dict[str, str] = {}
        for index, (value_name, tensor) in enumerate(constants.items()):
            buffer_name = f"constant_{index}"
            self.register_buffer(buffer_name, tensor)
            self._constant_buffers[value_name] = buffer_name
        self._steps = tuple(steps)

    def floating_dtype(self) -> torch.dtype:
        """The dtype the module computes in: its floating buffers' (after any ``.to()``)."""
        for buffer in self._buffers.values():
            if buffer is not None and buffer.is_floating_point():
                return buffer.dtype
        return torch.float32

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the graph's nodes in order on the inputs."""
        values: dict[str, torch.Tensor | None] = {"": None}
        values.update(zip(self.input_names, inputs, strict=True))
        for value_name, buffer_name in self._constant_buffers.items():
            values[value_name] = self._buffers[buffer_name]
        floating = self.floating_dtype()
        for step in self._steps:
            result = step.kernel([values[name] for name in step.inputs], floating)
            if isinstance(result, torch.Tensor):
                values[step.outputs[0]] = result
            else:
                values.update(zip(step.outputs, result, strict=False))
        return tuple(_present(values[name], name) for name in self.output_names)


def _present(value: torch.Tensor | None, name: str) -> torch.Tensor:
    if value is None:
        raise RuntimeError(f"the ONNX graph never computes its output {name!r}")
    return value


@dataclass(frozen=True)
class OnnxProgram:
    """A converted graph with what its inputs and outputs declare."""

    module: OnnxGraphModule
    inputs: tuple[TensorSpec, ...] | None
    output_names: tuple[str, ...]
    fixed_batch: int | None


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper, numpy_helper

    attributes: dict[str, Any] = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if attribute.type == attribute.TENSOR:
            value = numpy_helper.to_array(value)
        attributes[attribute.name] = value
    return attributes


def _tensor_from(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, copy=True))


def _constant_value(node: OnnxNode) -> torch.Tensor:
    attributes = node.attributes
    if "value" in attributes:
        return _tensor_from(np.asarray(attributes["value"]))
    for key, dtype in (
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in attributes:
            return _tensor_from(np.asarray(attributes[key], dtype=dtype))
    raise UnsupportedNodeError(f"Constant with {', '.join(attributes) or 'no value'}")


def _opsets(model: Any) -> dict[str, int]:
    return {entry.domain or "": int(entry.version) for entry in model.opset_import}


def _value_spec(value: Any, where: str) -> tuple[TensorSpec | None, int | None]:
    """The tensor spec a graph input declares, and its fixed batch size if it has one."""
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise ModelLoadError(f"{where}: input {value.name!r} is a {kind}, not a tensor")
    tensor_type = value.type.tensor_type
    dtype = torch_dtype_of_onnx(tensor_type.elem_type)
    if dtype is None:
        raise ModelLoadError(
            f"{where}: input {value.name!r} has ONNX element type {tensor_type.elem_type}, "
            "which PyTorch cannot hold"
        )
    if not tensor_type.HasField("shape") or not tensor_type.shape.dim:
        return None, None
    sizes = [
        dim.dim_value if dim.HasField("dim_value") else VARIABLE for dim in tensor_type.shape.dim
    ]
    fixed_batch = sizes[0] if sizes[0] > 0 else None
    datatype = datatype_of_torch(dtype, f"{where}: input {value.name!r}")
    return TensorSpec(value.name, datatype, (VARIABLE, *sizes[1:])), fixed_batch


def _convert_nodes(
    graph: Any, opsets: dict[str, int], known: set[str], where: str
) -> tuple[dict[str, torch.Tensor], list[_Step]]:
    constants: dict[str, torch.Tensor] = {}
    steps: list[_Step] = []
    unsupported: dict[str, str] = {}
    for node in graph.node:
        domain = node.domain or ""
        label = node.op_type if domain in DEFAULT_DOMAINS else f"{domain}.{node.op_type}"
        opset = opsets.get(domain, opsets.get("ai.onnx" if domain == "" else "", 1))
        info = OnnxNode(node.op_type, _attributes(node), opset, tuple(node.output))
        try:
            if domain not in DEFAULT_DOMAINS:
                raise UnsupportedNodeError(label)
            if node.op_type == "Constant":
                constants[node.output[0]] = _constant_value(info)
            elif node.op_type in OPERATORS:
                steps.append(
                    _Step(OPERATORS[node.op_type](info), tuple(node.input), tuple(node.output))
                )
            else:
                raise UnsupportedNodeError(label)
        except UnsupportedNodeError as error:
            unsupported.setdefault(label, str(error))
            known.update(name for name in node.output if name)
            continue
        missing = [name for name in node.input if name and name not in known]
        if missing:
            raise ModelLoadError(
                f"{where}: node {node.name or node.op_type!r} reads {', '.join(missing)} before "
                "any node computes it (the graph is not in topological order)"
            )
        known.update(name for name in node.output if name)
    if unsupported:
        features = sorted(set(unsupported.values()))
        raise ModelLoadError(
            f"{where}: PyTorch cannot run the ONNX operator(s) {', '.join(sorted(unsupported))} "
            f"({'; '.join(features)} not supported); the ketch-torch README lists the "
            "operators it converts"
        )
    return constants, steps


def read_onnx(path: Path) -> OnnxProgram:
    """Read and convert the ONNX model at ``path``; ModelLoadError says what is wrong."""
    try:
        import onnx
    except ImportError:
        raise ModelLoadError(
            f"{path} is an ONNX model, and reading one needs the onnx package: "
            "pip install 'ketch-torch[onnx]'"
        ) from None
    try:
        model = onnx.load(str(path))
    except Exception as error:
        raise ModelLoadError(f"{path} is not a readable ONNX model: {error}") from error
    where = str(path)
    graph = model.graph
    if not graph.node:
        raise ModelLoadError(f"{path} is not a readable ONNX model: its graph has no nodes")
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    graph_inputs = [value for value in graph.input if value.name not in initializers]
    specs, batches = [], []
    for value in graph_inputs:
        spec, batch = _value_spec(value, where)
        specs.append(spec)
        batches.append(batch)
    from onnx import numpy_helper

    constants = {name: _tensor_from(numpy_helper.to_array(t)) for name, t in initializers.items()}
    known = {value.name for value in graph_inputs} | set(initializers)
    node_constants, steps = _convert_nodes(graph, _opsets(model), known, where)
    constants.update(node_constants)
    output_names = tuple(value.name for value in graph.output)
    module = OnnxGraphModule([value.name for value in graph_inputs], output_names, constants, steps)
    declared = None if any(spec is None for spec in specs) else tuple(s for s in specs if s)
    return OnnxProgram(module.eval(), declared, output_names, batches[0] if batches else None)
