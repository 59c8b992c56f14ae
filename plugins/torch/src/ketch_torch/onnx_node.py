"""The pieces every ONNX operator is built from: the node, the kernel, and the table.

A builder turns one ONNX node (its attributes and opset) into a kernel: a
function of the node's input tensors (None for an omitted optional input) and
the module's floating-point dtype, returning one tensor or a tuple of them.
Builders register themselves in :data:`OPERATORS` by operator name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import torch

__all__ = [
    "OPERATORS",
    "Builder",
    "Inputs",
    "Kernel",
    "OnnxNode",
    "Result",
    "UnsupportedNodeError",
    "int_list",
    "operator",
    "required",
    "torch_dtype_of_onnx",
]

Inputs = Sequence[torch.Tensor | None]
Result = torch.Tensor | tuple[torch.Tensor, ...]
Kernel = Callable[[Inputs, torch.dtype], Result]
Builder = Callable[["OnnxNode"], Kernel]

OPERATORS: dict[str, Builder] = {}
"""Builders by ONNX operator name (default domain)."""

# TensorProto.DataType codes, without importing onnx here
_TORCH_BY_ONNX_TYPE: Final[dict[int, torch.dtype]] = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
    16: torch.bfloat16,
}


def torch_dtype_of_onnx(code: int) -> torch.dtype | None:
    """The PyTorch dtype for an ONNX element type code; None when PyTorch has none."""
    return _TORCH_BY_ONNX_TYPE.get(code)


@dataclass(frozen=True)
class OnnxNode:
    """One node, reduced to what a builder needs."""

    op_type: str
    attributes: Mapping[str, Any]
    opset: int
    outputs: tuple[str, ...]

    def integer(self, key: str, default: int) -> int:
        """An integer attribute."""
        return int(self.attributes.get(key, default))

    def number(self, key: str, default: float) -> float:
        """A floating-point attribute."""
        return float(self.attributes.get(key, default))

    def integers(self, key: str) -> list[int] | None:
        """A list-of-integers attribute, or None when absent."""
        value = self.attributes.get(key)
        return None if value is None else [int(item) for item in value]

    def text(self, key: str, default: str) -> str:
        """A string attribute (ONNX stores them as bytes)."""
        value = self.attributes.get(key, default)
        return value.decode() if isinstance(value, bytes) else str(value)


class UnsupportedNodeError(Exception):
    """A node uses a feature of its operator that the converter does not implement."""


def operator(*names: str) -> Callable[[Builder], Builder]:
    """Register a builder under one or more operator names."""

    def register(builder: Builder) -> Builder:
        for name in names:
            OPERATORS[name] = builder
        return builder

    return register


def required(value: torch.Tensor | None, what: str) -> torch.Tensor:
    """An input the operator needs; RuntimeError naming it when the graph omits it."""
    if value is None:
        raise RuntimeError(f"ONNX node input {what} is missing")
    return value


def int_list(value: torch.Tensor | None) -> list[int]:
    """A tensor of integers (shapes, axes, pads) as a list."""
    return [int(item) for item in required(value, "of integers").reshape(-1).tolist()]
