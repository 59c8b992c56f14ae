"""ONNX convolution, pooling and normalization, padding as ONNX pads (unevenly if need be)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import torch
import torch.nn.functional as F  # noqa: N812

from ketch_torch.onnx_node import (
    Inputs,
    Kernel,
    OnnxNode,
    Result,
    UnsupportedNodeError,
    operator,
    required,
)

__all__: list[str] = []

# --- convolution and pooling ----------------------------------------------------------------

_CONVOLUTIONS: Final = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAX_POOLS: Final = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVERAGE_POOLS: Final = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@dataclass(frozen=True)
class _Window:
    """Kernel, strides, dilations and padding of a convolution or pooling node."""

    auto_pad: str
    pads: list[int] | None
    strides: list[int] | None
    dilations: list[int] | None

    @classmethod
    def of(cls, node: OnnxNode) -> _Window:
        auto_pad = node.text("auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            raise UnsupportedNodeError(f"{node.op_type} auto_pad {auto_pad!r}")
        return cls(
            auto_pad, node.integers("pads"), node.integers("strides"), node.integers("dilations")
        )

    def padding(self, sizes: Sequence[int], kernel: Sequence[int]) -> list[tuple[int, int]]:
        """(before, after) padding for each spatial axis of an input of ``sizes``."""
        rank = len(kernel)
        strides = self.strides or [1] * rank
        dilations = self.dilations or [1] * rank
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pairs = []
            for size, k, stride, dilation in zip(sizes, kernel, strides, dilations, strict=True):
                total = max(
                    (math.ceil(size / stride) - 1) * stride + (k - 1) * dilation + 1 - size, 0
                )
                before = total // 2 if self.auto_pad == "SAME_UPPER" else (total + 1) // 2
                pairs.append((before, total - before))
            return pairs
        if self.auto_pad == "VALID" or not self.pads:
            return [(0, 0)] * rank
        return list(zip(self.pads[:rank], self.pads[rank:], strict=True))


def _symmetric(pairs: list[tuple[int, int]]) -> list[int] | None:
    return [before for before, after in pairs] if all(b == a for b, a in pairs) else None


def _pad_flat(pairs: list[tuple[int, int]]) -> list[int]:
    flat: list[int] = []
    for before, after in reversed(pairs):
        flat += [before, after]
    return flat


@operator("Conv")
def _conv(node: OnnxNode) -> Kernel:
    window = _Window.of(node)
    groups = node.integer("group", 1)

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x, weight = required(inputs[0], "X"), required(inputs[1], "W")
        bias = inputs[2] if len(inputs) > 2 else None
        kernel = list(weight.shape[2:])
        rank = len(kernel)
        pairs = window.padding(list(x.shape[2:]), kernel)
        symmetric = _symmetric(pairs)
        if symmetric is None:
            x, symmetric = F.pad(x, _pad_flat(pairs)), [0] * rank
        return _CONVOLUTIONS[rank](
            x,
            weight,
            bias,
            stride=window.strides or 1,
            padding=symmetric,
            dilation=window.dilations or 1,
            groups=groups,
        )

    return run


@dataclass(frozen=True)
class _Pool:
    """A pooling node's window, kernel and rounding."""

    window: _Window
    kernel: list[int]
    ceil_mode: bool

    @classmethod
    def of(cls, node: OnnxNode) -> _Pool:
        kernel = node.integers("kernel_shape") or []
        return cls(_Window.of(node), kernel, node.integer("ceil_mode", 0) == 1)

    def torch_padding(self, x: torch.Tensor) -> tuple[list[tuple[int, int]], list[int] | None]:
        """The padding per axis, and the same as PyTorch's pools take it (None: they cannot)."""
        pairs = self.window.padding(list(x.shape[2:]), self.kernel)
        symmetric = _symmetric(pairs)
        if symmetric is None or any(2 * p > k for p, k in zip(symmetric, self.kernel, strict=True)):
            return pairs, None
        return pairs, symmetric


@operator("MaxPool")
def _max_pool(node: OnnxNode) -> Kernel:
    pool = _Pool.of(node)
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedNodeError("MaxPool with its Indices output")

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "X")
        pairs, padding = pool.torch_padding(x)
        if padding is None:
            x, padding = F.pad(x, _pad_flat(pairs), value=-math.inf), [0] * len(pool.kernel)
        return _MAX_POOLS[len(pool.kernel)](
            x,
            pool.kernel,
            stride=pool.window.strides or 1,
            padding=padding,
            dilation=pool.window.dilations or 1,
            ceil_mode=pool.ceil_mode,
        )

    return run


@operator("AveragePool")
def _average_pool(node: OnnxNode) -> Kernel:
    pool = _Pool.of(node)
    include_pad = node.integer("count_include_pad", 0) == 1
    if any(dilation != 1 for dilation in pool.window.dilations or []):
        raise UnsupportedNodeError("AveragePool with dilations")

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "X")
        average = _AVERAGE_POOLS[len(pool.kernel)]
        strides = pool.window.strides or [1] * len(pool.kernel)
        pairs, padding = pool.torch_padding(x)
        if padding is not None:
            return average(
                x,
                pool.kernel,
                stride=strides,
                padding=padding,
                ceil_mode=pool.ceil_mode,
                count_include_pad=include_pad,
            )
        # uneven padding: the ratio of two sums, of the padded values and of what counts
        flat = _pad_flat(pairs)
        counted = F.pad(torch.ones_like(x[:1, :1]), flat, value=1.0 if include_pad else 0.0)
        totals = average(F.pad(x, flat), pool.kernel, stride=strides, ceil_mode=pool.ceil_mode)
        return totals / average(counted, pool.kernel, stride=strides, ceil_mode=pool.ceil_mode)

    return run


# --- normalization --------------------------------------------------------------------------


@operator("BatchNormalization")
def _batch_norm(node: OnnxNode) -> Kernel:
    epsilon = node.number("epsilon", 1e-5)
    if node.integer("spatial", 1) != 1:
        raise UnsupportedNodeError("BatchNormalization with spatial=0")
    if node.integer("training_mode", 0) == 1:
        raise UnsupportedNodeError("BatchNormalization in training mode")
    extra = len(node.outputs) - 1

    def run(inputs: Inputs, _: torch.dtype) -> Result:
        x, scale, bias, mean, variance = (
            required(item, "of BatchNormalization") for item in inputs[:5]
        )
        y = F.batch_norm(x, mean, variance, scale, bias, training=False, eps=epsilon)
        if extra == 0:
            return y
        # test-mode exports (Caffe2's among them) may name the running statistics as outputs
        return (y, *([mean, variance] * 2)[:extra])

    return run


@operator("InstanceNormalization")
def _instance_norm(node: OnnxNode) -> Kernel:
    epsilon = node.number("epsilon", 1e-5)
    return lambda inputs, _: F.instance_norm(
        required(inputs[0], "input"),
        weight=required(inputs[1], "scale"),
        bias=required(inputs[2], "B"),
        eps=epsilon,
    )


@operator("LayerNormalization")
def _layer_norm(node: OnnxNode) -> Kernel:
    axis = node.integer("axis", -1)
    epsilon = node.number("epsilon", 1e-5)
    if any(node.outputs[1:]):
        raise UnsupportedNodeError("LayerNormalization with its Mean or InvStdDev output")

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "X")
        bias = inputs[2] if len(inputs) > 2 else None
        shape = tuple(x.shape[axis % x.ndim :])
        return F.layer_norm(x, shape, required(inputs[1], "Scale"), bias, eps=epsilon)

    return run


@operator("LRN")
def _lrn(node: OnnxNode) -> Kernel:
    size = node.integer("size", 1)
    alpha, beta, bias = (
        node.number("alpha", 1e-4),
        node.number("beta", 0.75),
        node.number("bias", 1.0),
    )
    before = (size - 1) // 2

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "X")
        squares = F.pad((x * x).movedim(1, -1), (before, size - 1 - before))
        window_sums = squares.unfold(-1, size, 1).sum(dim=-1).movedim(-1, 1)
        return x / (bias + (alpha / size) * window_sums) ** beta

    return run
