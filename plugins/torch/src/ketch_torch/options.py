"""The options the PyTorch plugin understands, checked once at load time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ketch import ModelLoadError, ModelSpec, check_options

__all__ = ["DTYPES", "FORMATS", "KNOWN_OPTIONS", "TorchOptions", "requested_format"]

FORMATS: Final = ("auto", "torchscript", "export", "onnx")
DTYPES: Final = ("auto", "float32", "float16", "bfloat16")

KNOWN_OPTIONS: Final[dict[str, str]] = {
    "format": "auto (default, from the file's contents), torchscript, export or onnx (an "
    "ONNX graph takes ketch-onnx's options instead of the ones below, threads included)",
    "inputs": "the inputs, as NAME:DATATYPE:DIMS separated by commas, DIMS the row's sizes "
    "joined by x, -1 for a variable one (pixels:FP32:64, image:FP32:3x8x8)",
    "outputs": "comma-separated names for the outputs, in the order the model returns them",
    "metadata": "a JSON file that declares the inputs and outputs "
    "(default: the model's path with .ketch.json appended, when that file exists)",
    "examples": "an .npz file of example inputs, one array per input name",
    "dtype": "the floating-point type to compute in: auto (default, as saved), float32, "
    "float16 or bfloat16",
    "threads": "how many threads PyTorch uses within an operation (torch.set_num_threads)",
}


def _choice(spec: ModelSpec, key: str, choices: tuple[str, ...]) -> str:
    value = (spec.option(key) or choices[0]).strip().lower()
    if value not in choices:
        raise ModelLoadError(f"option {key}={value!r} is not one of {', '.join(choices)}")
    return value


def requested_format(spec: ModelSpec) -> str:
    """The option ``format``: ``auto`` or the format the user forces.

    Read before the other options, because an ONNX graph takes ketch-onnx's options.
    """
    return _choice(spec, "format", FORMATS)


def _positive_int(spec: ModelSpec, key: str) -> int | None:
    text = spec.option(key)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ModelLoadError(f"option {key}={text!r} is not a whole number") from None
    if value < 1:
        raise ModelLoadError(f"option {key}={value} must be at least 1")
    return value


def _names(text: str | None) -> tuple[str, ...]:
    names = tuple(part.strip() for part in (text or "").split(",") if part.strip())
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ModelLoadError(f"option outputs names {', '.join(duplicates)} twice")
    return names


def _existing_file(spec: ModelSpec, key: str) -> Path | None:
    text = spec.option(key)
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"option {key}={text!r}: no such file")
    return path


@dataclass(frozen=True, slots=True)
class TorchOptions:
    """The plugin's options with their defaults applied.

    ``inputs`` is the option's raw text, parsed by :mod:`ketch_torch.declared`
    together with the metadata file, so that both report errors the same way.
    """

    file_format: str
    inputs: str | None
    outputs: tuple[str, ...]
    metadata: Path | None
    examples: Path | None
    dtype: str
    threads: int | None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> TorchOptions:
        """The options in ``spec``; ModelLoadError names an unknown or malformed one."""
        check_options(spec, KNOWN_OPTIONS, "torch")
        inputs = spec.option("inputs")
        return cls(
            file_format=_choice(spec, "format", FORMATS),
            inputs=inputs.strip() if inputs is not None else None,
            outputs=_names(spec.option("outputs")),
            metadata=_existing_file(spec, "metadata"),
            examples=_existing_file(spec, "examples"),
            dtype=_choice(spec, "dtype", DTYPES),
            threads=_positive_int(spec, "threads"),
        )
