"""The options the Vowpal Wabbit plugin understands, checked once at load time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ketch import ModelLoadError, ModelSpec, check_options, option_choice
from ketch_vw.examples import DEFAULT_NAMESPACE

__all__ = ["DENSE_DATATYPES", "INPUT_KINDS", "KNOWN_OPTIONS", "VwOptions"]

INPUT_KINDS: Final = ("text", "dense")
DENSE_DATATYPES: Final = ("FP32", "FP64", "INT32", "INT64")

KNOWN_OPTIONS: Final[dict[str, str]] = {
    "args": "VW arguments to load the model with, instead of the <model>.args file beside it",
    "input": "text (default: one VW text-format example per row, BYTES) or dense (numeric rows)",
    "input_name": "the input tensor's name (default input)",
    "input_datatype": f"the dense input's datatype, one of {', '.join(DENSE_DATATYPES)} "
    "(default FP64)",
    "n_features": "columns per dense row (required with input=dense)",
    "namespace": "the VW namespace that a dense row's columns become features of (default f)",
    "actions": "probability columns of a contextual-bandit model: the most actions a row has",
    "learn": "true (default) to learn from observed rows, false to serve the model read-only",
    "save_path": "where learned state is saved (default: the model file itself)",
    "save_every_updates": "also save after this many learned rows (default: only on shutdown)",
    "save_every_seconds": "also save this often while there are unsaved updates",
}


def _positive_int(spec: ModelSpec, key: str) -> int | None:
    text = spec.option(key)
    if text is None or not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        raise ModelLoadError(f"option {key}={text!r} is not a whole number") from None
    if value < 1:
        raise ModelLoadError(f"option {key}={value} must be at least 1")
    return value


def _positive_float(spec: ModelSpec, key: str) -> float | None:
    text = spec.option(key)
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ModelLoadError(f"option {key}={text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ModelLoadError(f"option {key}={text!r} must be a positive number of seconds")
    return value


def _yes_no(spec: ModelSpec, key: str, default: bool) -> bool:
    text = spec.option(key)
    if text is None:
        return default
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ModelLoadError(f"option {key}={text!r} is not true or false")


def _namespace(spec: ModelSpec) -> str:
    name = (spec.option("namespace") or DEFAULT_NAMESPACE).strip()
    if not name or any(character in name for character in " \t\n|:"):
        raise ModelLoadError(
            f"option namespace={name!r} must be a non-empty word without spaces, '|' or ':'"
        )
    return name


@dataclass(frozen=True, slots=True)
class VwOptions:
    """The plugin's options with their defaults applied."""

    args: str | None
    input_kind: str
    input_name: str
    input_datatype: str
    n_features: int | None
    namespace: str
    actions: int | None
    learn: bool
    save_path: Path | None
    save_every_updates: int | None
    save_every_seconds: float | None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> VwOptions:
        """The options in ``spec``; ModelLoadError names an unknown or malformed one."""
        check_options(spec, KNOWN_OPTIONS, "vw")
        input_kind = option_choice(spec, "input", INPUT_KINDS, "text")
        n_features = _positive_int(spec, "n_features")
        if input_kind == "dense" and n_features is None:
            raise ModelLoadError("option input=dense needs n_features, the columns of a row")
        save_path = spec.option("save_path")
        learn = _yes_no(spec, "learn", default=True)
        saving = [
            key
            for key in ("save_path", "save_every_updates", "save_every_seconds")
            if spec.option(key)
        ]
        if saving and not learn:
            raise ModelLoadError(
                f"option {saving[0]} saves learned state, but learn=false: the model never "
                "changes; drop one of them"
            )
        return cls(
            args=spec.option("args"),
            input_kind=input_kind,
            input_name=(spec.option("input_name") or "input").strip(),
            input_datatype=option_choice(spec, "input_datatype", DENSE_DATATYPES, "FP64"),
            n_features=n_features,
            namespace=_namespace(spec),
            actions=_positive_int(spec, "actions"),
            learn=learn,
            save_path=Path(save_path) if save_path and save_path.strip() else None,
            save_every_updates=_positive_int(spec, "save_every_updates"),
            save_every_seconds=_positive_float(spec, "save_every_seconds"),
        )
