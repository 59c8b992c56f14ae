"""Hand-built ONNX graphs for the converter's tests, and ONNX's own reference evaluator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

__all__ = ["OpCase", "build_model", "reference_outputs", "save_model"]


@dataclass(frozen=True)
class OpCase:
    """One node: its runtime inputs, constant inputs (initializers), attributes and opset.

    ``order`` lists the node's inputs by name ("" for an omitted optional one);
    by default the runtime inputs, then the constants.
    """

    op_type: str
    inputs: Mapping[str, np.ndarray]
    constants: Mapping[str, np.ndarray] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    opset: int = 17
    outputs: int = 1
    order: Sequence[str] | None = None

    @property
    def id(self) -> str:
        """A readable test id."""
        details = ",".join(f"{key}={value}" for key, value in sorted(self.attributes.items()))
        return f"{self.op_type}-opset{self.opset}" + (f"-{details}" if details else "")


def _value_info(name: str, array: np.ndarray) -> onnx.ValueInfoProto:
    element = helper.np_dtype_to_tensor_dtype(array.dtype)
    return helper.make_tensor_value_info(name, element, list(array.shape))


def build_model(case: OpCase) -> onnx.ModelProto:
    """A one-node model whose graph outputs are ``y0``, ``y1`` ..."""
    names = list(case.order) if case.order is not None else [*case.inputs, *case.constants]
    outputs = [f"y{index}" for index in range(case.outputs)]
    node = helper.make_node(case.op_type, names, outputs, **case.attributes)
    graph = helper.make_graph(
        [node],
        "case",
        [_value_info(name, array) for name, array in case.inputs.items()],
        [helper.make_tensor_value_info(name, TensorProto.UNDEFINED, None) for name in outputs],
        initializer=[
            numpy_helper.from_array(array, name) for name, array in case.constants.items()
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    return model


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` to ``path``."""
    onnx.save(model, str(path))
    return path


def reference_outputs(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """What ONNX's reference evaluator (numpy) computes for the model."""
    results = ReferenceEvaluator(model).run(None, dict(inputs))
    return [np.asarray(result) for result in results]
