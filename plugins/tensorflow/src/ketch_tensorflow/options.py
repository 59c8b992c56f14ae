"""The options the TensorFlow plugin understands, checked once at load time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ketch import ModelLoadError, ModelSpec, check_options
from ketch.model_spec import TRUE_WORDS

__all__ = ["DEFAULT_SIGNATURE", "KNOWN_OPTIONS", "TensorFlowOptions"]

DEFAULT_SIGNATURE: Final = "serving_default"
FALSE_WORDS: Final = frozenset({"0", "false", "no", "off"})

KNOWN_OPTIONS: Final[dict[str, str]] = {
    "signature": f"the SavedModel signature to serve (default {DEFAULT_SIGNATURE})",
    "quiet": "false to keep TensorFlow's start-up log lines (default true)",
    "trust_pickle": (
        "true to let Keras load Lambda layers stored as Python bytecode, which runs code "
        "from the file (Keras's safe_mode=False)"
    ),
}


def _yes_no(spec: ModelSpec, key: str, default: bool) -> bool:
    value = spec.option(key)
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ModelLoadError(f"option {key}={value!r} is not true or false")


@dataclass(frozen=True, slots=True)
class TensorFlowOptions:
    """The plugin's options with their defaults applied."""

    signature: str = DEFAULT_SIGNATURE
    quiet: bool = True
    trust_pickle: bool = False

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> TensorFlowOptions:
        """The options in ``spec``; ModelLoadError names an unknown or malformed one."""
        check_options(spec, KNOWN_OPTIONS, "tensorflow")
        signature = (spec.option("signature") or DEFAULT_SIGNATURE).strip()
        if not signature:
            raise ModelLoadError("option signature is empty; name a SavedModel signature")
        return cls(
            signature=signature,
            quiet=_yes_no(spec, "quiet", default=True),
            trust_pickle=_yes_no(spec, "trust_pickle", default=False),
        )
