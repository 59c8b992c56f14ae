"""Element-wise ONNX operators, activations, softmax and matrix products.

Before opset 7, binary operators broadcast by ``broadcast=1, axis=...``; before
opset 13, Softmax, LogSoftmax and Hardmax work on the input flattened to two
dimensions. Both are honoured, as Caffe2-era graphs need them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import torch
import torch.nn.functional as F  # noqa: N812

from ketch_torch.onnx_node import (
    OPERATORS,
    Builder,
    Inputs,
    Kernel,
    OnnxNode,
    Result,
    operator,
    required,
)

__all__: list[str] = []

# --- element-wise ---------------------------------------------------------------------------

_UNARY: Final[dict[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "Abs": torch.abs,
    "Ceil": torch.ceil,
    "Cos": torch.cos,
    "Erf": torch.erf,
    "Exp": torch.exp,
    "Floor": torch.floor,
    "Log": torch.log,
    "Neg": torch.neg,
    "Not": torch.logical_not,
    "Reciprocal": torch.reciprocal,
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
    "Sign": torch.sign,
    "Sin": torch.sin,
    "Softplus": F.softplus,
    "Softsign": F.softsign,
    "Sqrt": torch.sqrt,
    "Tanh": torch.tanh,
    "HardSwish": F.hardswish,
}


def _unary(function: Callable[[torch.Tensor], torch.Tensor]) -> Builder:
    def build(node: OnnxNode) -> Kernel:
        return lambda inputs, _: function(required(inputs[0], "X"))

    return build


for _name, _function in _UNARY.items():
    OPERATORS[_name] = _unary(_function)


def _divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.is_floating_point() or b.is_floating_point():
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")


_BINARY: Final[dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "Add": torch.add,
    "And": torch.logical_and,
    "Div": _divide,
    "Equal": torch.eq,
    "Greater": torch.gt,
    "GreaterOrEqual": torch.ge,
    "Less": torch.lt,
    "LessOrEqual": torch.le,
    "Mul": torch.mul,
    "Or": torch.logical_or,
    "Pow": torch.pow,
    "Sub": torch.sub,
}


def _binary(function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Builder:
    def build(node: OnnxNode) -> Kernel:
        legacy = node.integer("broadcast", 0) == 1 and "axis" in node.attributes
        axis = node.integer("axis", 0)

        def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
            a, b = required(inputs[0], "A"), required(inputs[1], "B")
            if legacy:  # opset < 7: B's dimensions line up with A's from ``axis``
                start = axis % a.ndim
                b = b.reshape(*b.shape, *([1] * (a.ndim - start - b.ndim)))
            return function(a, b)

        return run

    return build


for _name, _function2 in _BINARY.items():
    OPERATORS[_name] = _binary(_function2)


def _variadic(function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Builder:
    def build(node: OnnxNode) -> Kernel:
        def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
            tensors = [required(item, "operand") for item in inputs]
            result = tensors[0]
            for tensor in tensors[1:]:
                result = function(result, tensor)
            return result

        return run

    return build


@operator("Mod")
def _mod(node: OnnxNode) -> Kernel:
    # fmod=0: the remainder takes the divisor's sign (Python's %); fmod=1: the dividend's (C's)
    function = torch.fmod if node.integer("fmod", 0) == 1 else torch.remainder
    return lambda inputs, _: function(required(inputs[0], "A"), required(inputs[1], "B"))


OPERATORS["Max"] = _variadic(torch.maximum)
OPERATORS["Min"] = _variadic(torch.minimum)
OPERATORS["Sum"] = _variadic(torch.add)


@operator("Mean")
def _mean(node: OnnxNode) -> Kernel:
    add = _variadic(torch.add)(node)
    return lambda inputs, dtype: _as_tensor(add(inputs, dtype)) / len(inputs)


def _as_tensor(result: Result) -> torch.Tensor:
    return result if isinstance(result, torch.Tensor) else result[0]


@operator("Where")
def _where(node: OnnxNode) -> Kernel:
    return lambda inputs, _: torch.where(
        required(inputs[0], "condition"), required(inputs[1], "X"), required(inputs[2], "Y")
    )


# --- activations ----------------------------------------------------------------------------


@operator("LeakyRelu")
def _leaky_relu(node: OnnxNode) -> Kernel:
    slope = node.number("alpha", 0.01)
    return lambda inputs, _: F.leaky_relu(required(inputs[0], "X"), slope)


@operator("Elu")
def _elu(node: OnnxNode) -> Kernel:
    alpha = node.number("alpha", 1.0)
    return lambda inputs, _: F.elu(required(inputs[0], "X"), alpha)


@operator("Selu")
def _selu(node: OnnxNode) -> Kernel:
    alpha = node.number("alpha", 1.67326319217681884765625)
    gamma = node.number("gamma", 1.05070102214813232421875)

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "X")
        return gamma * torch.where(x > 0, x, alpha * torch.expm1(x))

    return run


@operator("HardSigmoid")
def _hard_sigmoid(node: OnnxNode) -> Kernel:
    alpha, beta = node.number("alpha", 0.2), node.number("beta", 0.5)
    return lambda inputs, _: torch.clamp(alpha * required(inputs[0], "X") + beta, 0.0, 1.0)


@operator("PRelu")
def _prelu(node: OnnxNode) -> Kernel:
    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x, slope = required(inputs[0], "X"), required(inputs[1], "slope")
        return torch.where(x >= 0, x, x * slope)

    return run


@operator("Gelu")
def _gelu(node: OnnxNode) -> Kernel:
    approximate = node.text("approximate", "none")
    return lambda inputs, _: F.gelu(required(inputs[0], "X"), approximate=approximate)


@operator("Clip")
def _clip(node: OnnxNode) -> Kernel:
    if node.opset < 11:
        low = node.number("min", -math.inf)
        high = node.number("max", math.inf)
        return lambda inputs, _: torch.clamp(required(inputs[0], "input"), low, high)

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "input")
        bounds = [*inputs[1:3], None, None][:2]
        return torch.clamp(x, bounds[0], bounds[1])

    return run


def _two_dimensional(function: Callable[[torch.Tensor, int], torch.Tensor]) -> Builder:
    """Softmax-like operators: before opset 13 they work on the input flattened to 2-D."""

    def build(node: OnnxNode) -> Kernel:
        if node.opset >= 13:
            axis = node.integer("axis", -1)
            return lambda inputs, _: function(required(inputs[0], "input"), axis)
        axis = node.integer("axis", 1)

        def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
            x = required(inputs[0], "input")
            start = axis % x.ndim
            flat = x.reshape(math.prod(x.shape[:start]), math.prod(x.shape[start:]))
            return function(flat, 1).reshape(x.shape)

        return run

    return build


def _hardmax(x: torch.Tensor, axis: int) -> torch.Tensor:
    winners = x.argmax(dim=axis, keepdim=True)
    return torch.zeros_like(x).scatter_(axis, winners, 1.0)


OPERATORS["Softmax"] = _two_dimensional(lambda x, axis: torch.softmax(x, dim=axis))
OPERATORS["LogSoftmax"] = _two_dimensional(lambda x, axis: torch.log_softmax(x, dim=axis))
OPERATORS["Hardmax"] = _two_dimensional(_hardmax)


# --- linear algebra ---------------------------------------------------------------------------


@operator("MatMul")
def _matmul(node: OnnxNode) -> Kernel:
    return lambda inputs, _: torch.matmul(required(inputs[0], "A"), required(inputs[1], "B"))


@operator("Gemm")
def _gemm(node: OnnxNode) -> Kernel:
    alpha, beta = node.number("alpha", 1.0), node.number("beta", 1.0)
    transpose_a, transpose_b = node.integer("transA", 0) == 1, node.integer("transB", 0) == 1

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        a, b = required(inputs[0], "A"), required(inputs[1], "B")
        a = a.t() if transpose_a else a
        b = b.t() if transpose_b else b
        c = inputs[2] if len(inputs) > 2 else None
        if c is None:
            product = a @ b
            return product if alpha == 1.0 else alpha * product
        return torch.addmm(c, a, b, beta=beta, alpha=alpha)

    return run
