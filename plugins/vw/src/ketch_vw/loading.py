"""Opening a VW model file with its arguments and describing what it serves.

This is the only module that imports ``vowpalwabbit``, and only the plugin's hooks
import it, so discovering plugins never pays for VW.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Final

from ketch import Capabilities, ModelLoadError, ModelSpec, Signature, TensorSpec, Tolerance
from ketch_vw.arguments import (
    ModelArguments,
    resolve_arguments,
    sidecar_path,
    workspace_arguments,
)
from ketch_vw.model import PLATFORM, VwModel
from ketch_vw.options import VwOptions
from ketch_vw.persistence import write_text_atomically
from ketch_vw.tasks import Task, TaskInfo, detect_task, label_spec, output_specs

__all__ = ["load_model", "open_workspace", "vw_version"]

_log = logging.getLogger(__name__)
_VERSION: Final = re.compile(rb"\d+\.\d+\.\d+[\w.+-]*")
_MAX_VERSION_BYTES: Final = 64


def vw_version(path: Path) -> str | None:
    """The VW version that wrote the model file at ``path``, or None when it is no VW model.

    A VW model file starts with the length of a version string (four bytes, little
    endian) and the string itself, such as ``9.11.9``, ending in a zero byte.
    """
    try:
        with path.open("rb") as file:
            head = file.read(4 + _MAX_VERSION_BYTES)
    except OSError:
        return None
    length = int.from_bytes(head[:4], "little")
    if not 2 <= length <= _MAX_VERSION_BYTES or len(head) < 4 + length:
        return None
    text = head[4 : 4 + length]
    if not text.endswith(b"\0") or not _VERSION.fullmatch(text[:-1]):
        return None
    return text[:-1].decode("ascii")


def open_workspace(model_file: Path, arguments: ModelArguments) -> Any:
    """A ``vowpalwabbit.Workspace`` loaded from ``model_file`` with ``arguments``."""
    from vowpalwabbit import pyvw

    try:
        return pyvw.Workspace(arg_list=workspace_arguments(model_file, arguments))
    except RuntimeError as error:
        raise ModelLoadError(
            f"{model_file}: VW cannot load it with the arguments {arguments.text!r} "
            f"(from {arguments.source}): {error}"
        ) from None


def _input_spec(options: VwOptions) -> TensorSpec:
    if options.input_kind == "dense":
        assert options.n_features is not None
        return TensorSpec(options.input_name, options.input_datatype, (-1, options.n_features))
    return TensorSpec(options.input_name, "BYTES", (-1,))


def _check_options_fit(spec: ModelSpec, options: VwOptions, info: TaskInfo, source: str) -> None:
    if options.input_kind == "text":
        for key in ("n_features", "namespace", "input_datatype"):
            if spec.option(key) is not None:
                raise ModelLoadError(f"option {key} applies to input=dense only")
    if info.task is Task.CONTEXTUAL_BANDIT:
        if options.input_kind == "dense":
            raise ModelLoadError(
                f"{source} is a contextual-bandit model: its rows are multi-line VW text "
                "examples (input=text), not dense rows"
            )
        if options.actions is None:
            raise ModelLoadError(
                f"{source} is a contextual-bandit model: set the option actions to the most "
                "actions a row may have (the columns of its probabilities)"
            )
    elif options.actions is not None:
        raise ModelLoadError(
            f"option actions applies to contextual-bandit models only; {source} is a "
            f"{info.task.value} model"
        )


def _save_path(spec: ModelSpec, options: VwOptions) -> Path | None:
    """Where learned state goes, checked to be writable; None for a read-only model."""
    if not options.learn:
        return None
    path = Path(options.save_path or spec.path).absolute()
    if path.is_dir():
        raise ModelLoadError(f"option save_path={str(path)!r} is a folder; name a file")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK | os.X_OK):
        raise ModelLoadError(
            f"cannot save learned state to {path}: {path.parent} is not a writable folder; "
            "set the option save_path to a writable file, or learn=false to serve read-only"
        )
    return path


def _model_file(spec: ModelSpec, save_path: Path | None) -> Path:
    """The file to load: a saved state at ``save_path`` when one exists, else the model."""
    model = Path(spec.path)
    if save_path is None or save_path == model.absolute() or not save_path.exists():
        return model
    if vw_version(save_path) is None:
        _log.warning(
            "%s is not a VW model file: starting from %s, and the next save replaces it",
            save_path,
            model,
        )
        return model
    _log.info("resuming from the learned state saved at %s (instead of %s)", save_path, model)
    return save_path


def load_model(spec: ModelSpec) -> VwModel | None:
    """The model ``spec`` names, or None when its file is not a VW model file."""
    path = Path(spec.path)
    if vw_version(path) is None:
        return None
    options = VwOptions.from_spec(spec)
    arguments = resolve_arguments(path, options.args)
    if arguments.dropped:
        _log.warning(
            "ignoring %s from %s: the vw plugin reads no data files and saves the model itself",
            ", ".join(arguments.dropped),
            arguments.source,
        )
    save_path = _save_path(spec, options)
    model_file = _model_file(spec, save_path)
    workspace = open_workspace(model_file, arguments)
    try:
        info = detect_task(workspace, str(model_file))
        _check_options_fit(spec, options, info, str(model_file))
        if save_path is not None and save_path != path.absolute():
            write_text_atomically(sidecar_path(save_path), arguments.text + "\n")
    except BaseException:
        workspace.finish()
        raise
    signature = Signature(
        inputs=(_input_spec(options),),
        outputs=output_specs(info, options.actions),
        capabilities=Capabilities(
            devices=("cpu",),
            observe=options.learn,
            tolerance=Tolerance(rtol=1e-6, atol=1e-7),
            persists_observations=options.learn,
            labels=label_spec(info) if options.learn else None,
        ),
        platform=PLATFORM,
    )
    return VwModel(
        workspace,
        info,
        options=options,
        signature=signature,
        arguments=arguments,
        save_path=save_path,
    )
