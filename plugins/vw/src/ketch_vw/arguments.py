"""The VW arguments a model is loaded with: from the ``args`` option or a file beside the model.

A VW model file records its reductions (``--oaa 10``, ``--cb_explore_adf``) but not
every argument it was trained with (``--l2``, ``--loss_function``, ``--probabilities``),
so the plugin reads those from ``<model>.args``, the training command line, or from
the ``args`` option. Arguments that read or write files, open sockets or change how
VW runs are the plugin's business (it loads with ``-i``, runs quietly, saves itself):
they are dropped from a ``.args`` file, where training leaves them, and refused in
the option, where someone typed them on purpose.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ketch import ModelLoadError

__all__ = [
    "RESERVED",
    "SIDECAR_SUFFIX",
    "ModelArguments",
    "resolve_arguments",
    "sidecar_path",
    "split_arguments",
    "workspace_arguments",
]

SIDECAR_SUFFIX: Final = ".args"

RESERVED: Final[dict[str, bool]] = {
    # name: whether it takes a value
    "data": True,
    "final_regressor": True,
    "initial_regressor": True,
    "cache": False,
    "cache_file": True,
    "kill_cache": False,
    "passes": True,
    "predictions": True,
    "raw_predictions": True,
    "readable_model": True,
    "invert_hash": True,
    "save_per_pass": False,
    "predict_only_model": False,
    "output_feature_regularizer_binary": True,
    "output_feature_regularizer_text": True,
    "input_feature_regularizer": True,
    "audit_regressor": True,
    "feature_mask": True,
    "dictionary": True,
    "dictionary_path": True,
    "compressed": False,
    "json": False,
    "dsjson": False,
    "flatbuffer": False,
    "daemon": False,
    "foreground": False,
    "port": True,
    "num_children": True,
    "pid_file": True,
    "port_file": True,
    "span_server": True,
    "span_server_port": True,
    "unique_id": True,
    "total": True,
    "node": True,
    "sendto": True,
    "testonly": False,
    "holdout_off": False,
    "holdout_period": True,
    "holdout_after": True,
    "early_terminate": True,
    "no_stdin": False,
    "quiet": False,
    "audit": False,
    "progress": True,
    "help": False,
    "version": False,
    "driver_output_off": False,
    "driver_output": True,
    "log_level": True,
    "log_output": True,
    "limit_output": True,
    "onethread": False,
    "example_queue_limit": True,
}
_SHORT: Final = {
    "-d": "data",
    "-f": "final_regressor",
    "-i": "initial_regressor",
    "-c": "cache",
    "-k": "kill_cache",
    "-p": "predictions",
    "-r": "raw_predictions",
    "-t": "testonly",
    "-a": "audit",
    "-P": "progress",
    "-h": "help",
}


def sidecar_path(model_path: Path) -> Path:
    """Where a model's training arguments are kept: ``<model file name>.args`` beside it."""
    return model_path.with_name(model_path.name + SIDECAR_SUFFIX)


def split_arguments(text: str, source: str) -> list[str]:
    """``text`` split as a shell would; ModelLoadError naming ``source`` when it cannot be."""
    try:
        return shlex.split(text, comments=True)
    except ValueError as error:
        raise ModelLoadError(f"{source}: cannot split {text!r} into arguments: {error}") from None


def _reserved_name(token: str) -> tuple[str, bool] | None:
    """The reserved argument ``token`` starts, and whether its value is attached to it."""
    if token.startswith("--"):
        name, equals, _ = token[2:].partition("=")
        return (name, bool(equals)) if name in RESERVED else None
    short = _SHORT.get(token[:2]) if token.startswith("-") and len(token) >= 2 else None
    if short is None:
        return None
    if len(token) == 2:
        return short, False
    return (short, True) if RESERVED[short] else None


def _partition(tokens: list[str]) -> tuple[list[str], list[str]]:
    """The tokens to keep, and the reserved arguments (with their values) found."""
    kept: list[str] = []
    found: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        reserved = _reserved_name(token)
        if reserved is None:
            kept.append(token)
            index += 1
            continue
        name, attached = reserved
        takes_value = RESERVED[name] and not attached
        if takes_value and index + 1 < len(tokens):
            found.append(f"{token} {tokens[index + 1]}")
            index += 2
        else:
            found.append(token)
            index += 1
    return kept, found


@dataclass(frozen=True, slots=True)
class ModelArguments:
    """The arguments to load a model with, where they came from, and what was left out."""

    tokens: tuple[str, ...]
    source: str
    dropped: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The arguments as one command line, as a ``.args`` file holds them."""
        return shlex.join(self.tokens)


def resolve_arguments(model_path: Path, option: str | None) -> ModelArguments:
    """The arguments from the ``args`` option if given, else from the ``.args`` file, else none.

    :raises ketch.ModelLoadError: the option holds an argument the plugin reserves,
        or the ``.args`` file cannot be read.
    """
    if option is not None:
        tokens, reserved = _partition(split_arguments(option, "option args"))
        if reserved:
            raise ModelLoadError(
                f"option args: {', '.join(reserved)} read or write files, open sockets or "
                "change how VW runs, which the vw plugin does itself (it loads the model "
                "with -i, runs quietly, and saves learned state to save_path); remove them"
            )
        return ModelArguments(tuple(tokens), "option args")
    sidecar = sidecar_path(model_path)
    if not sidecar.is_file():
        return ModelArguments((), "the model file alone (no " + sidecar.name + " beside it)")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{sidecar}: cannot read the model's arguments: {error}") from None
    tokens, dropped = _partition(split_arguments(text, str(sidecar)))
    return ModelArguments(tuple(tokens), str(sidecar), tuple(dropped))


def workspace_arguments(model_file: Path, arguments: ModelArguments) -> list[str]:
    """The full VW command line: quiet, the model file, then the model's arguments."""
    return ["--quiet", "--initial_regressor", str(model_file), *arguments.tokens]
