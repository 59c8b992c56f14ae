"""The options the ONNX plugin understands, checked once at load time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ketch import ModelLoadError, ModelSpec

__all__ = ["DTYPES", "FIXED_BATCH", "KNOWN_OPTIONS", "OPTIMIZATION_LEVELS", "OnnxOptions"]

OPTIMIZATION_LEVELS: Final = ("all", "extended", "basic", "disable")
DTYPES: Final = ("auto", "float32", "float16", "bfloat16")
FIXED_BATCH: Final = ("split", "max_batch")

KNOWN_OPTIONS: Final[dict[str, str]] = {
    "intra_op_threads": "threads onnxruntime uses inside one operator (default: its own, "
    "one per physical core)",
    "inter_op_threads": "threads that run independent operators at once; above 1 turns on "
    "onnxruntime's parallel execution mode (default: sequential)",
    "optimization": "graph optimisation level: all (default), extended, basic or disable",
    "save_optimized": "a file to write the graph to after onnxruntime has optimised it",
    "dtype": "the floating-point type to compute in: auto (default, as exported), float32, "
    "float16 (the graph is converted, its inputs and outputs keep their types); bfloat16 "
    "is refused: onnxruntime has no converter to it",
    "fixed_batch": "for a graph exported for one batch size: split (default: larger batches "
    "run in pieces of that size, the last one padded) or max_batch (the signature declares "
    "it as max_batch, so larger batches are refused and the gateway never sends them)",
}


def _choice(options: Mapping[str, str], key: str, choices: tuple[str, ...]) -> str:
    value = (options.get(key) or choices[0]).strip().lower()
    if value not in choices:
        raise ModelLoadError(f"option {key}={value!r} is not one of {', '.join(choices)}")
    return value


def _positive_int(options: Mapping[str, str], key: str) -> int | None:
    text = options.get(key)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ModelLoadError(f"option {key}={text!r} is not a whole number") from None
    if value < 1:
        raise ModelLoadError(f"option {key}={value} must be at least 1")
    return value


def _writable_file(options: Mapping[str, str], key: str) -> Path | None:
    text = options.get(key)
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.parent.is_dir():
        raise ModelLoadError(f"option {key}={text!r}: folder {str(path.parent)!r} does not exist")
    return path


@dataclass(frozen=True, slots=True)
class OnnxOptions:
    """The plugin's options with their defaults applied (None: onnxruntime's default)."""

    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    optimization: str = "all"
    save_optimized: Path | None = None
    dtype: str = "auto"
    fixed_batch: str = "split"

    @classmethod
    def from_options(cls, options: Mapping[str, str], plugin: str = "onnx") -> OnnxOptions:
        """The options in ``options``; ModelLoadError names an unknown or malformed one."""
        unknown = sorted(set(options) - set(KNOWN_OPTIONS))
        if unknown:
            known = "; ".join(f"{key}: {meaning}" for key, meaning in KNOWN_OPTIONS.items())
            raise ModelLoadError(
                f"unknown option(s) {', '.join(unknown)} for an ONNX graph in the {plugin} "
                f"plugin; known: {known}"
            )
        dtype = _choice(options, "dtype", DTYPES)
        if dtype == "bfloat16":
            raise ModelLoadError(
                "option dtype=bfloat16: onnxruntime converts graphs to float16 only; export the "
                "model in bfloat16 to serve it so, or use dtype=float16"
            )
        return cls(
            intra_op_threads=_positive_int(options, "intra_op_threads"),
            inter_op_threads=_positive_int(options, "inter_op_threads"),
            optimization=_choice(options, "optimization", OPTIMIZATION_LEVELS),
            save_optimized=_writable_file(options, "save_optimized"),
            dtype="auto" if dtype == "float32" else dtype,
            fixed_batch=_choice(options, "fixed_batch", FIXED_BATCH),
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> OnnxOptions:
        """The options of ``spec``."""
        return cls.from_options(spec.options)
