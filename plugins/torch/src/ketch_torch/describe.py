"""Settling a model's signature from what the user declares, the file says, and a probe.

Inputs come from the first source that has them: the options and metadata file
(:mod:`ketch_torch.declared`), the file itself (``torch.export`` programs record
datatypes and shapes), or example inputs. Outputs are learnt
from one probe call on the CPU, named by the user, the file, the keys of a
returned dictionary, or else ``output`` / ``output_0``, ``output_1`` ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from ketch import (
    VARIABLE,
    Capabilities,
    InvalidInputError,
    ModelLoadError,
    Signature,
    TensorSpec,
    Tolerance,
    datatype_of,
    numpy_dtype,
    validate_inputs,
)
from ketch_torch.declared import METADATA_SUFFIX, Declared, DeclaredOutput
from ketch_torch.devices import available_devices
from ketch_torch.export_shapes import ExportBounds, sample_rows
from ketch_torch.handle import PLATFORM, TorchModel
from ketch_torch.loading import Program
from ketch_torch.tensors import datatype_of_torch

__all__ = [
    "PROBE_ROWS",
    "TOLERANCES",
    "describe",
    "output_tensors",
    "probe_inputs",
    "read_examples",
]

PROBE_ROWS: Final = 2
TOLERANCES: Final[dict[str | None, Tolerance]] = {
    None: Tolerance(rtol=1e-4, atol=1e-5),
    "float32": Tolerance(rtol=1e-4, atol=1e-5),
    "float16": Tolerance(rtol=1e-2, atol=1e-3),
    "bfloat16": Tolerance(rtol=5e-2, atol=1e-2),
}
"""How far a row's outputs may move with the rest of its batch, per compute dtype."""


def read_examples(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file of example inputs."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path} is not a readable .npz file of examples: {error}") from error


def _specs_from_examples(examples: Mapping[str, np.ndarray], source: str) -> tuple[TensorSpec, ...]:
    specs = []
    for name, array in examples.items():
        if array.ndim == 0:
            raise ModelLoadError(f"{source}: example {name!r} has no batch axis")
        try:
            datatype = datatype_of(array.dtype)
        except InvalidInputError as error:
            raise ModelLoadError(f"{source}: example {name!r}: {error}") from None
        specs.append(TensorSpec(name, datatype, (VARIABLE, *array.shape[1:])))
    return tuple(specs)


def _settle_inputs(
    path: Path,
    program: Program,
    declared: Declared,
    examples: dict[str, np.ndarray] | None,
    examples_source: str,
) -> tuple[TensorSpec, ...]:
    if declared.inputs is not None:
        inputs = declared.inputs
    elif program.inputs is not None:
        inputs = program.inputs
    elif examples:
        order = program.input_names
        if order and set(order) == set(examples):
            examples = {name: examples[name] for name in order}
        inputs = _specs_from_examples(examples, examples_source)
    else:
        takes = (
            f" (its forward takes {', '.join(program.input_names)})" if program.input_names else ""
        )
        raise ModelLoadError(
            f"{path}: a {program.file_format} model does not record its input shapes{takes}; "
            f"declare them in {path.name}{METADATA_SUFFIX} beside it, with the option "
            "inputs=NAME:DATATYPE:DIMS (such as input:FP32:64), or give example inputs "
            "with the option examples=FILE.npz"
        )
    if program.input_names is not None and len(program.input_names) != len(inputs):
        raise ModelLoadError(
            f"{path}: the model takes {len(program.input_names)} input(s) "
            f"({', '.join(program.input_names)}), but {len(inputs)} are declared "
            f"({', '.join(spec.name for spec in inputs)})"
        )
    return inputs


def probe_inputs(
    inputs: Sequence[TensorSpec],
    examples: dict[str, np.ndarray] | None,
    rows: int,
    bounds: ExportBounds | None = None,
) -> dict[str, np.ndarray]:
    """``rows`` rows for a probe call.

    The examples repeated; rows inside an exported program's bounds; or zeros, with
    variable sizes of 1.
    """
    if bounds is not None:
        return sample_rows(inputs, bounds, examples, rows)
    if examples is not None:
        repeats = -(-rows // max(len(next(iter(examples.values()))), 1))
        return {
            spec.name: np.concatenate([examples[spec.name]] * repeats)[:rows] for spec in inputs
        }
    return {
        spec.name: np.zeros(
            (rows, *[1 if size == VARIABLE else size for size in spec.row_shape]),
            dtype=numpy_dtype(spec.datatype),
        )
        for spec in inputs
    }


def _misfit(inputs: tuple[TensorSpec, ...], examples: Mapping[str, np.ndarray]) -> str | None:
    """Why ``examples`` do not fit ``inputs``; None when they do."""
    # validate_inputs checks against a signature, which needs an output
    signature = Signature(inputs, (TensorSpec("unused", "FP32", (VARIABLE,)),))
    try:
        validate_inputs(signature, examples)
    except InvalidInputError as error:
        return str(error)
    return None


def output_tensors(result: Any, keys: Sequence[str | int | None]) -> list[torch.Tensor]:
    """The tensors that ``keys`` pick out of a module's result."""
    if len(keys) == 1 and keys[0] is None:
        return [result]
    return [result[key] for key in keys]


def _output_layout(
    path: Path, result: Any, declared: tuple[DeclaredOutput, ...] | None, file_names: Any
) -> tuple[tuple[str, ...], tuple[str | int | None, ...]]:
    """The outputs' names, and the key that picks each out of the module's result."""
    wanted = [output.name for output in declared] if declared is not None else None
    if isinstance(result, torch.Tensor):
        names = wanted or ["output"]
        if len(names) != 1:
            raise ModelLoadError(
                f"{path}: the model returns one tensor, but {len(names)} are named"
            )
        return tuple(names), (None,)
    if isinstance(result, Mapping):
        keys = [key for key in result if isinstance(key, str)]
        if len(keys) != len(result):
            raise ModelLoadError(
                f"{path}: the model returns a dictionary whose keys are not all strings"
            )
        if wanted is None:
            return tuple(keys), tuple(keys)
        missing = [name for name in wanted if name not in result]
        if missing:
            raise ModelLoadError(
                f"{path}: the model returns no output {', '.join(map(repr, missing))}; it returns "
                f"{', '.join(map(repr, keys))}"
            )
        return tuple(wanted), tuple(wanted)
    if isinstance(result, list | tuple):
        count = len(result)
        from_file = list(file_names) if file_names and len(file_names) == count else None
        names = wanted or from_file or [f"output_{index}" for index in range(count)]
        if len(names) != count:
            raise ModelLoadError(
                f"{path}: the model returns {count} outputs, but {len(names)} are named "
                f"({', '.join(names)})"
            )
        return tuple(names), tuple(range(count))
    raise ModelLoadError(
        f"{path}: the model returns a {type(result).__name__}; Ketch serves a tensor, a tuple "
        "or list of tensors, or a dictionary of tensors"
    )


def _output_spec(
    path: Path, name: str, tensor: Any, rows: int, declared: DeclaredOutput | None
) -> TensorSpec:
    where = f"{path}: output {name!r}"
    if not isinstance(tensor, torch.Tensor):
        raise ModelLoadError(f"{where} is a {type(tensor).__name__}, not a tensor")
    if tensor.ndim == 0 or tensor.shape[0] != rows:
        raise ModelLoadError(
            f"{where} has shape {list(tensor.shape)} for a probe batch of {rows} rows; Ketch "
            "needs one output row per input row"
        )
    probed = TensorSpec(name, datatype_of_torch(tensor.dtype, where), (VARIABLE, *tensor.shape[1:]))
    if declared is None:
        return probed
    datatype = declared.datatype or probed.datatype
    spec = TensorSpec(name, datatype, declared.shape or probed.shape)
    if datatype != probed.datatype or not spec.accepts_row_shape(probed.row_shape):
        raise ModelLoadError(
            f"{where} is declared {datatype} {list(spec.shape)}, but the model returns "
            f"{probed.datatype} {list(probed.shape)}"
        )
    return spec


def describe(
    path: Path,
    program: Program,
    *,
    declared: Declared,
    examples: dict[str, np.ndarray] | None,
    examples_source: str | None,
    compute_dtype: str | None,
) -> TorchModel:
    """The handle for ``program``: its signature settled and checked by one probe call.

    ``examples`` are the user's (read from ``examples_source``); without them, the
    examples the file carries are used when they fit the settled inputs.
    """
    source = examples_source or f"{path}'s examples"
    inputs = _settle_inputs(path, program, declared, examples or program.examples, source)
    if examples is not None:
        problem = _misfit(inputs, examples)
        if problem:
            raise ModelLoadError(f"{source}: the examples do not fit the inputs: {problem}")
    elif program.examples is not None and not _misfit(inputs, program.examples):
        examples = program.examples
    rows = program.fixed_batch or PROBE_ROWS
    if program.bounds is not None:
        rows = max(rows, program.bounds.batch_minimum)
    probe = probe_inputs(inputs, examples, rows, program.bounds)
    try:
        with torch.inference_mode():
            result = program.module(*(torch.from_numpy(probe[spec.name]) for spec in inputs))
    except Exception as error:
        shapes = ", ".join(f"{name} {list(array.shape)}" for name, array in probe.items())
        raise ModelLoadError(
            f"{path}: the model failed on a probe batch ({shapes}): {type(error).__name__}: {error}"
        ) from error
    names, keys = _output_layout(path, result, declared.outputs, program.output_names)
    declared_by_name = {output.name: output for output in declared.outputs or ()}
    outputs = tuple(
        _output_spec(path, name, tensor, rows, declared_by_name.get(name))
        for name, tensor in zip(names, output_tensors(result, keys), strict=True)
    )
    signature = Signature(
        inputs=inputs,
        outputs=outputs,
        capabilities=Capabilities(
            devices=available_devices(),
            max_batch=program.bounds.batch_maximum if program.bounds else None,
            tolerance=TOLERANCES[compute_dtype],
        ),
        platform=PLATFORM,
    )
    return TorchModel(
        path=path,
        file_format=program.file_format,
        program=program,
        module=program.module,
        signature=signature,
        output_keys=keys,
        fixed_batch=program.fixed_batch,
        compute_dtype=compute_dtype,
    )
