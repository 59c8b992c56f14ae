"""Reading a model file of each format into one shape: a module and what the file says.

Every format loads onto the CPU first; :func:`module_for` then builds the module
to run on the device and in the dtype that placement asks for, leaving the one
read from the file untouched.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ketch import VARIABLE, DimensionRange, ModelLoadError, TensorSpec
from ketch_torch.export_shapes import ExportBounds, read_bounds
from ketch_torch.formats import EXPORT, TORCHSCRIPT
from ketch_torch.tensors import datatype_of_torch

__all__ = ["Program", "module_for", "read_program"]


@dataclass(frozen=True)
class Program:
    """A model read from its file onto the CPU, before its signature is settled.

    ``input_names`` are the forward's tensor parameters when the file records
    them; ``inputs`` the full specs when it declares datatypes and shapes too;
    ``output_names`` the names it gives its outputs; ``examples`` example
    inputs it carries; ``fixed_batch`` the batch size it was exported for, when
    it cannot take any other; ``bounds`` the sizes a ``torch.export`` program
    accepts.
    """

    file_format: str
    module: Any
    input_names: tuple[str, ...] | None = None
    inputs: tuple[TensorSpec, ...] | None = None
    output_names: tuple[str, ...] | None = None
    examples: dict[str, np.ndarray] | None = None
    fixed_batch: int | None = None
    bounds: ExportBounds | None = None


def _load_torchscript(path: Path, device: torch.device) -> Any:
    with warnings.catch_warnings():
        # TorchScript is deprecated for new models; serving the ones that exist is the point
        warnings.filterwarnings("ignore", message=".*torch.jit.load", category=DeprecationWarning)
        try:
            module = torch.jit.load(str(path), map_location=device)  # type: ignore[no-untyped-call]
        except Exception as error:
            raise ModelLoadError(f"{path} is not a readable TorchScript file: {error}") from error
    return module.eval()


def _read_torchscript(path: Path) -> Program:
    module = _load_torchscript(path, torch.device("cpu"))
    arguments = module.forward.schema.arguments[1:]
    required = [argument for argument in arguments if not argument.has_default_value()]
    not_tensors = [argument.name for argument in required if str(argument.type) != "Tensor"]
    if not_tensors:
        raise ModelLoadError(
            f"{path}: forward takes {', '.join(not_tensors)}, which are not tensors; Ketch "
            "passes one tensor per input"
        )
    return Program(TORCHSCRIPT, module, input_names=tuple(a.name for a in required))


def _fake_spec(
    name: str, value: Any, where: str, ranges: tuple[DimensionRange | None, ...] = ()
) -> TensorSpec:
    sizes = [size if isinstance(size, int) else VARIABLE for size in value.shape]
    if not sizes:
        raise ModelLoadError(f"{where}: input {name!r} is a scalar; Ketch needs a batch axis")
    datatype = datatype_of_torch(value.dtype, f"{where}: input {name!r}")
    return TensorSpec(name, datatype, (VARIABLE, *sizes[1:]), ranges)


def _export_examples(program: Any, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    examples = getattr(program, "example_inputs", None)
    if not examples:
        return None
    args, kwargs = examples
    tensors = [*args, *kwargs.values()]
    if len(tensors) != len(names) or not all(isinstance(t, torch.Tensor) for t in tensors):
        return None
    return {
        name: tensor.detach().cpu().float().numpy()
        if tensor.dtype == torch.bfloat16
        else tensor.detach().cpu().numpy()
        for name, tensor in zip(names, tensors, strict=True)
    }


def _read_export(path: Path) -> Program:
    from torch.export.graph_signature import InputKind, TensorArgument

    try:
        exported = torch.export.load(str(path))
    except Exception as error:
        raise ModelLoadError(f"{path} is not a readable torch.export archive: {error}") from error
    where = str(path)
    user_inputs = [
        s for s in exported.graph_signature.input_specs if s.kind == InputKind.USER_INPUT
    ]
    if not all(isinstance(s.arg, TensorArgument) for s in user_inputs):
        raise ModelLoadError(f"{where}: the exported program takes inputs that are not tensors")
    placeholders = {node.name: node for node in exported.graph.nodes if node.op == "placeholder"}
    values = [placeholders[s.arg.name].meta["val"] for s in user_inputs]
    names = tuple(s.arg.name for s in user_inputs)
    call_signature = exported.module_call_graph[0].signature
    forward_names = getattr(call_signature, "forward_arg_names", None)
    if forward_names and len(forward_names) == len(names):
        names = tuple(forward_names)
    bounds = read_bounds(values, exported.range_constraints)
    specs = tuple(
        _fake_spec(n, v, where, r) for n, v, r in zip(names, values, bounds.ranges, strict=True)
    )
    first_batch = values[0].shape[0] if values and values[0].shape else None
    return Program(
        EXPORT,
        exported.module(),
        input_names=names,
        inputs=specs,
        examples=_export_examples(exported, names),
        fixed_batch=first_batch if isinstance(first_batch, int) else None,
        bounds=bounds,
    )


def read_program(path: Path, file_format: str) -> Program:
    """The model at ``path``, read as ``torchscript`` or ``export``; ModelLoadError says why not."""
    readers = {TORCHSCRIPT: _read_torchscript, EXPORT: _read_export}
    return readers[file_format](path)


def _exported_module(path: Path, device: torch.device) -> Any:
    """A fresh module from the archive, moved (graph constants too) to ``device``.

    Reading the archive again is how an exported program is copied: a deep copy
    loses its graph's names.
    """
    exported = torch.export.load(str(path))
    if device.type == "cpu":
        return exported.module()
    try:
        from torch.export.passes import move_to_device_pass
    except ImportError:  # before PyTorch 2.6
        return exported.module().to(device)
    return move_to_device_pass(exported, device).module()


def module_for(
    program: Program, path: Path, device: torch.device, dtype: torch.dtype | None
) -> Any:
    """The program's module on ``device``, floating parameters in ``dtype`` (None: as saved)."""
    if device.type == "cpu" and dtype is None:
        return program.module
    # a fresh read: neither format's modules survive a deep copy intact
    if program.file_format == EXPORT:
        module = _exported_module(path, device)
    else:
        module = _load_torchscript(path, device)
    return module.to(dtype) if dtype is not None else module
