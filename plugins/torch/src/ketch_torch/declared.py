"""What the user declares about a model's tensors: the metadata file and the options.

A metadata file saved beside the model (``model.pt`` → ``model.pt.ketch.json``)
declares the inputs in full and the outputs by name, optionally with datatype
and shape::

    {
      "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
      "outputs": [{"name": "logits"}, {"name": "probabilities", "datatype": "FP32",
                   "shape": [-1, 10]}]
    }

The options ``inputs`` and ``outputs`` say the same on the command line and win
over the file. Nothing here imports PyTorch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ketch import VARIABLE, ModelLoadError, TensorSpec
from ketch_torch.options import TorchOptions

__all__ = [
    "METADATA_SUFFIX",
    "Declared",
    "DeclaredOutput",
    "declared_tensors",
    "metadata_path",
    "parse_inputs_option",
]

METADATA_SUFFIX: Final = ".ketch.json"
# the datatypes PyTorch 2.2 and later hold natively (no wider unsigned integers, no strings)
SERVABLE_DATATYPES: Final = (
    "BOOL",
    "UINT8",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
)


@dataclass(frozen=True, slots=True)
class DeclaredOutput:
    """An output named by the user; datatype and shape are learnt from a probe when None."""

    name: str
    datatype: str | None = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Declared:
    """The inputs and outputs the user declared (None: not declared), and where."""

    inputs: tuple[TensorSpec, ...] | None
    outputs: tuple[DeclaredOutput, ...] | None
    source: str


def metadata_path(model_path: Path, options: TorchOptions) -> Path | None:
    """The metadata file to read: the option's, or the one beside the model if it exists."""
    if options.metadata is not None:
        return options.metadata
    beside = model_path.with_name(model_path.name + METADATA_SUFFIX)
    return beside if beside.is_file() else None


def _datatype(value: object, where: str) -> str:
    if value not in SERVABLE_DATATYPES:
        raise ModelLoadError(
            f"{where}: datatype {value!r} is not one of {', '.join(SERVABLE_DATATYPES)}"
        )
    return str(value)


def _shape(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(size, int) and not isinstance(size, bool) for size in value
    ):
        raise ModelLoadError(f"{where}: shape must be a list of whole numbers, got {value!r}")
    if not value or value[0] != VARIABLE:
        raise ModelLoadError(f"{where}: shape {value} must start with the batch dimension -1")
    if any(size < VARIABLE for size in value):
        raise ModelLoadError(f"{where}: shape {value} has a size below -1")
    return tuple(value)


def _entries(document: dict[str, Any], key: str, source: str) -> list[dict[str, Any]] | None:
    entries = document.get(key)
    if entries is None:
        return None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ModelLoadError(f"{source}: {key!r} must be a list of objects")
    for index, entry in enumerate(entries):
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ModelLoadError(f"{source}: {key}[{index}] needs a name")
    names = [entry["name"] for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ModelLoadError(f"{source}: {key} names {', '.join(duplicates)} twice")
    return entries


def _read_metadata(path: Path) -> Declared:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path} is not a readable JSON file: {error}") from error
    source = str(path)
    if not isinstance(document, dict):
        raise ModelLoadError(f"{source}: expected a JSON object with inputs and outputs")
    unknown = sorted(set(document) - {"inputs", "outputs"})
    if unknown:
        raise ModelLoadError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: inputs, outputs"
        )
    inputs = None
    input_entries = _entries(document, "inputs", source)
    if input_entries is not None:
        specs = []
        for entry in input_entries:
            where = f"{source}: input {entry['name']!r}"
            for field in ("datatype", "shape"):
                if field not in entry:
                    raise ModelLoadError(f"{where} needs a {field}")
            specs.append(
                TensorSpec(
                    entry["name"],
                    _datatype(entry["datatype"], where),
                    _shape(entry["shape"], where),
                )
            )
        inputs = tuple(specs)
    outputs = None
    output_entries = _entries(document, "outputs", source)
    if output_entries is not None:
        outputs = tuple(
            DeclaredOutput(
                entry["name"],
                _datatype(entry["datatype"], f"{source}: output {entry['name']!r}")
                if "datatype" in entry
                else None,
                _shape(entry["shape"], f"{source}: output {entry['name']!r}")
                if "shape" in entry
                else None,
            )
            for entry in output_entries
        )
    return Declared(inputs, outputs, source)


def parse_inputs_option(text: str) -> tuple[TensorSpec, ...]:
    """The inputs that ``inputs=NAME:DATATYPE:DIMS,...`` declares (DIMS exclude the batch)."""
    specs = []
    for part in (piece.strip() for piece in text.split(",")):
        pieces = part.split(":")
        if len(pieces) != 3 or not pieces[0].strip():
            raise ModelLoadError(
                f"option inputs: {part!r} is not NAME:DATATYPE:DIMS (such as pixels:FP32:64)"
            )
        name, datatype, dims = (piece.strip() for piece in pieces)
        where = f"option inputs: input {name!r}"
        try:
            row_shape = tuple(int(size) for size in dims.split("x")) if dims else ()
        except ValueError:
            raise ModelLoadError(
                f"{where}: dimensions {dims!r} are not whole numbers joined by x"
            ) from None
        specs.append(
            TensorSpec(
                name,
                _datatype(datatype.upper(), where),
                _shape([VARIABLE, *row_shape], where),
            )
        )
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ModelLoadError(f"option inputs names {', '.join(duplicates)} twice")
    return tuple(specs)


def declared_tensors(model_path: Path, options: TorchOptions) -> Declared:
    """The inputs and outputs declared by the options, over those of the metadata file."""
    path = metadata_path(model_path, options)
    declared = _read_metadata(path) if path is not None else Declared(None, None, "")
    inputs, outputs, sources = declared.inputs, declared.outputs, [declared.source]
    if options.inputs is not None:
        inputs = parse_inputs_option(options.inputs)
        sources.append("option inputs")
    if options.outputs:
        outputs = tuple(DeclaredOutput(name) for name in options.outputs)
        sources.append("option outputs")
    return Declared(inputs, outputs, ", ".join(source for source in sources if source))
