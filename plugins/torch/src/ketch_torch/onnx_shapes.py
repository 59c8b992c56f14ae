"""ONNX operators that move, select and reduce: reshaping, slicing, casting, reductions.

Attributes that later opsets turned into inputs (``axes``, ``pads``, ``starts``)
are read from wherever the node's opset keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ketch_torch.onnx_node import (
    OPERATORS,
    Builder,
    Inputs,
    Kernel,
    OnnxNode,
    UnsupportedNodeError,
    int_list,
    operator,
    required,
    torch_dtype_of_onnx,
)

__all__: list[str] = []

# --- shapes ---------------------------------------------------------------------------------


@operator("Identity", "Dropout")
def _identity(node: OnnxNode) -> Kernel:
    if node.op_type == "Dropout" and len(node.outputs) > 1 and node.outputs[1]:
        return lambda inputs, _: (
            required(inputs[0], "data"),
            torch.ones_like(required(inputs[0], "data"), dtype=torch.bool),
        )
    return lambda inputs, _: required(inputs[0], "input")


@operator("Flatten")
def _flatten(node: OnnxNode) -> Kernel:
    axis = node.integer("axis", 1)

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "input")
        start = axis % (x.ndim + 1) if axis < 0 else axis
        return x.reshape(math.prod(x.shape[:start]), math.prod(x.shape[start:]))

    return run


@operator("Reshape")
def _reshape(node: OnnxNode) -> Kernel:
    allow_zero = node.integer("allowzero", 0) == 1
    fixed = node.integers("shape") if node.opset < 5 else None

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "data")
        shape = fixed if fixed is not None else int_list(inputs[1])
        if not allow_zero:
            shape = [x.shape[index] if size == 0 else size for index, size in enumerate(shape)]
        return x.reshape(shape)

    return run


@operator("Transpose")
def _transpose(node: OnnxNode) -> Kernel:
    order = node.integers("perm")

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "data")
        return x.permute(order if order is not None else list(reversed(range(x.ndim))))

    return run


def _axes(node: OnnxNode, inputs: Inputs, input_index: int, since: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or from an optional input (``since`` on)."""
    if node.opset < since:
        return node.integers("axes")
    value = inputs[input_index] if len(inputs) > input_index else None
    return None if value is None else int_list(value)


@operator("Squeeze")
def _squeeze(node: OnnxNode) -> Kernel:
    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "data")
        axes = _axes(node, inputs, 1, since=13)
        if axes is None:
            return x.squeeze()
        return x.squeeze(tuple(axis % x.ndim for axis in axes))

    return run


@operator("Unsqueeze")
def _unsqueeze(node: OnnxNode) -> Kernel:
    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "data")
        axes = _axes(node, inputs, 1, since=13) or []
        rank = x.ndim + len(axes)
        for axis in sorted(axis % rank for axis in axes):
            x = x.unsqueeze(axis)
        return x

    return run


@operator("Concat")
def _concat(node: OnnxNode) -> Kernel:
    axis = node.integer("axis", 0)
    return lambda inputs, _: torch.cat([required(item, "input") for item in inputs], dim=axis)


@operator("Shape")
def _shape(node: OnnxNode) -> Kernel:
    start = node.integer("start", 0)
    end = node.attributes.get("end")

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "data")
        sizes = list(x.shape)[start : None if end is None else int(end)]
        return torch.tensor(sizes, dtype=torch.int64, device=x.device)

    return run


@operator("Gather")
def _gather(node: OnnxNode) -> Kernel:
    axis = node.integer("axis", 0)

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x, indices = required(inputs[0], "data"), required(inputs[1], "indices")
        dim = axis % x.ndim
        indices = torch.where(indices < 0, indices + x.shape[dim], indices).to(torch.int64)
        picked = x.index_select(dim, indices.reshape(-1))
        return picked.reshape(*x.shape[:dim], *indices.shape, *x.shape[dim + 1 :])

    return run


@operator("Slice")
def _slice(node: OnnxNode) -> Kernel:
    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "data")
        if node.opset < 10:
            starts, ends = node.integers("starts") or [], node.integers("ends") or []
            axes, steps = node.integers("axes"), None
        else:
            starts, ends = int_list(inputs[1]), int_list(inputs[2])
            axes = int_list(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else None
            steps = int_list(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else None
        index: list[slice] = [slice(None)] * x.ndim
        for position, axis in enumerate(axes if axes is not None else range(len(starts))):
            step = steps[position] if steps is not None else 1
            if step < 1:
                raise RuntimeError("Slice with a negative step is not supported")
            index[axis % x.ndim] = slice(starts[position], ends[position], step)
        return x[tuple(index)]

    return run


@operator("Expand")
def _expand(node: OnnxNode) -> Kernel:
    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "input")
        return x.expand(np.broadcast_shapes(tuple(x.shape), tuple(int_list(inputs[1]))))

    return run


@operator("Cast")
def _cast(node: OnnxNode) -> Kernel:
    target = torch_dtype_of_onnx(node.integer("to", 1))
    if target is None:
        raise UnsupportedNodeError(f"Cast to ONNX type {node.integer('to', 1)}")

    def run(inputs: Inputs, floating: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "input")
        # a cast between floating types follows the dtype the module computes in
        return x.to(floating if target.is_floating_point else target)

    return run


@operator("ConstantOfShape")
def _constant_of_shape(node: OnnxNode) -> Kernel:
    value = node.attributes.get("value")
    fill = torch.zeros(1) if value is None else torch.as_tensor(value).reshape(-1)

    def run(inputs: Inputs, floating: torch.dtype) -> torch.Tensor:
        shape = required(inputs[0], "input")
        dtype = floating if fill.is_floating_point() else fill.dtype
        return torch.full(int_list(shape), fill[0].item(), dtype=dtype, device=shape.device)

    return run


@operator("Pad")
def _pad(node: OnnxNode) -> Kernel:
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    mode = node.text("mode", "constant")
    if mode not in modes:
        raise UnsupportedNodeError(f"Pad mode {mode!r}")

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "data")
        if node.opset < 11:
            pads, value = node.integers("pads") or [], node.number("value", 0.0)
            axes = list(range(x.ndim))
        else:
            pads = int_list(inputs[1])
            value_tensor = inputs[2] if len(inputs) > 2 else None
            value = 0.0 if value_tensor is None else float(value_tensor.reshape(-1)[0].item())
            given = inputs[3] if len(inputs) > 3 else None
            axes = list(range(x.ndim)) if given is None else [a % x.ndim for a in int_list(given)]
        count = len(axes)
        by_axis = {axis: (pads[i], pads[i + count]) for i, axis in enumerate(axes)}
        first = min((axis for axis, pair in by_axis.items() if pair != (0, 0)), default=x.ndim)
        flat: list[int] = []
        for axis in reversed(range(first, x.ndim)):
            flat += by_axis.get(axis, (0, 0))
        if modes[mode] == "constant":
            return F.pad(x, flat, mode="constant", value=value)
        return F.pad(x, flat, mode=modes[mode])

    return run


# --- reductions -----------------------------------------------------------------------------


def _reduction(function: Callable[[torch.Tensor, tuple[int, ...], bool], torch.Tensor]) -> Builder:
    def build(node: OnnxNode) -> Kernel:
        keep = node.integer("keepdims", 1) == 1
        noop_when_empty = node.integer("noop_with_empty_axes", 0) == 1
        # axes became an input in opset 13 for ReduceSum, in opset 18 for the others
        since = 13 if node.op_type == "ReduceSum" else 18

        def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
            x = required(inputs[0], "data")
            axes = _axes(node, inputs, 1, since=since)
            if not axes:
                if noop_when_empty:
                    return x
                axes = list(range(x.ndim))
            return function(x, tuple(axis % x.ndim for axis in axes), keep)

        return run

    return build


OPERATORS["ReduceMean"] = _reduction(lambda x, dims, keep: x.mean(dim=dims, keepdim=keep))
OPERATORS["ReduceSum"] = _reduction(lambda x, dims, keep: x.sum(dim=dims, keepdim=keep))
OPERATORS["ReduceMax"] = _reduction(lambda x, dims, keep: x.amax(dim=dims, keepdim=keep))
OPERATORS["ReduceMin"] = _reduction(lambda x, dims, keep: x.amin(dim=dims, keepdim=keep))


@operator("ArgMax", "ArgMin")
def _arg_extreme(node: OnnxNode) -> Kernel:
    axis = node.integer("axis", 0)
    keep = node.integer("keepdims", 1) == 1
    last = node.integer("select_last_index", 0) == 1
    function = torch.argmax if node.op_type == "ArgMax" else torch.argmin

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "data")
        if not last:
            return function(x, dim=axis, keepdim=keep)
        dim = axis % x.ndim
        flipped = function(x.flip(dim), dim=dim, keepdim=keep)
        return x.shape[dim] - 1 - flipped

    return run


@operator("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(node: OnnxNode) -> Kernel:
    average = node.op_type == "GlobalAveragePool"

    def run(inputs: Inputs, _: torch.dtype) -> torch.Tensor:
        x = required(inputs[0], "X")
        dims = tuple(range(2, x.ndim))
        return x.mean(dim=dims, keepdim=True) if average else x.amax(dim=dims, keepdim=True)

    return run
