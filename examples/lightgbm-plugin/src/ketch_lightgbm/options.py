"""The plugin's options (``ketch serve --option KEY=VALUE``), checked once at load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ketch import ModelLoadError, ModelSpec
from ketch.model_spec import TRUE_WORDS

__all__ = ["KNOWN_OPTIONS", "LightGBMOptions"]

KNOWN_OPTIONS: Final = {
    "input_datatype": "FP64 or FP32: the datatype of the input rows (default FP64)",
    "num_iteration": "use the first N boosting iterations (default: all)",
    "num_threads": "threads one prediction may use; 0 is LightGBM's default (default 1)",
    "raw_score": "also serve the raw scores, before the link function (default false)",
}
INPUT_DATATYPES: Final = ("FP64", "FP32")
FALSE_WORDS: Final = frozenset({"0", "false", "no", "off"})


def _whole_number(spec: ModelSpec, key: str, default: int | None, least: int) -> int | None:
    text = spec.option(key)
    if text is None:
        return default
    try:
        number = int(text)
    except ValueError:
        raise ModelLoadError(f"option {key}: expected a whole number, got {text!r}") from None
    if number < least:
        raise ModelLoadError(f"option {key}: expected at least {least}, got {number}")
    return number


def _flag(spec: ModelSpec, key: str) -> bool:
    text = (spec.option(key) or "false").strip().lower()
    if text not in TRUE_WORDS | FALSE_WORDS:
        raise ModelLoadError(f"option {key}: expected true or false, got {text!r}")
    return text in TRUE_WORDS


@dataclass(frozen=True)
class LightGBMOptions:
    """What the options ask for, validated."""

    input_datatype: str = "FP64"
    num_iteration: int | None = None
    num_threads: int = 1
    raw_score: bool = False

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> LightGBMOptions:
        """The options in ``spec``; ModelLoadError naming an unknown or malformed one."""
        unknown = sorted(set(spec.options) - set(KNOWN_OPTIONS))
        if unknown:
            raise ModelLoadError(
                f"unknown option(s) {', '.join(unknown)} for the lightgbm plugin; known options: "
                f"{', '.join(KNOWN_OPTIONS)}"
            )
        datatype = (spec.option("input_datatype") or "FP64").upper()
        if datatype not in INPUT_DATATYPES:
            raise ModelLoadError(
                f"option input_datatype: expected {' or '.join(INPUT_DATATYPES)}, got {datatype!r}"
            )
        threads = _whole_number(spec, "num_threads", 1, least=0)
        assert threads is not None
        return cls(
            input_datatype=datatype,
            num_iteration=_whole_number(spec, "num_iteration", None, least=1),
            num_threads=threads,
            raw_score=_flag(spec, "raw_score"),
        )
