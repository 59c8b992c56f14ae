"""Serving the one model that a directory holds, as KServe and volume mounts lay models out.

KServe's storage initializer copies a model to ``/mnt/models``, and a volume
mounts a folder: either way ``ketch serve`` is handed a directory, not a file.
A directory that the plugin loads as a whole (a TensorFlow SavedModel) is served
as it is. Otherwise the plugin's own answer to ``ketch_load`` tells which entries
are models (it returns None for a file it does not recognise, such as a sidecar
of arguments beside a VW model), so every plugin gets this without a hook of its
own. The directory must then hold exactly one model; when it holds none or
several, the error names what it does hold.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Final

from ketch.errors import KetchError, ModelLoadError
from ketch.framework import Framework
from ketch.model_spec import ModelSpec

__all__ = ["IGNORED_ENTRIES", "load_model"]

IGNORED_ENTRIES: Final = frozenset({"lost+found"})
"""Entries that file systems, not users, put in a directory (hidden names are skipped too)."""

_log = logging.getLogger(__name__)


def _entries(directory: Path) -> list[Path]:
    """The directory's entries that could be a model, sorted by name."""
    return sorted(
        entry
        for entry in directory.iterdir()
        if not entry.name.startswith(".") and entry.name not in IGNORED_ENTRIES
    )


def _listing(directory: Path) -> str:
    names = [entry.name + ("/" if entry.is_dir() else "") for entry in _entries(directory)]
    return ", ".join(names) if names else "nothing (it is empty)"


def load_model(framework: Framework, spec: ModelSpec) -> tuple[ModelSpec, object]:
    """The model at ``spec.path``, and the spec with the path it was loaded from.

    For a local directory that the plugin does not load as a whole, that is the
    one entry inside it that the plugin recognises; the returned spec names it.

    :raises ModelLoadError: nothing at the path; the plugin recognises no model
        there; or the directory holds several models. Each message names the
        directory's entries.
    :raises KetchError: the plugin recognised the model and failed to load it.
    """
    path = Path(spec.path)
    if "://" in spec.path or not path.is_dir():
        return spec, framework.load(spec)
    whole_error: KetchError | None = None
    try:
        whole = framework.try_load(spec)
    except KetchError as error:
        whole_error = error
    else:
        if whole is not None:
            return spec, whole
    found: list[tuple[ModelSpec, object]] = []
    failed: list[tuple[ModelSpec, KetchError]] = []
    for entry in _entries(path):
        entry_spec = dataclasses.replace(spec, path=str(entry))
        try:
            model = framework.try_load(entry_spec)
        except KetchError as error:  # recognised, but it would not load
            failed.append((entry_spec, error))
            continue
        if model is not None:
            found.append((entry_spec, model))
    if len(found) + len(failed) == 1:
        if failed:
            raise failed[0][1]
        entry_spec, model = found[0]
        _log.info(
            "directory %s holds one model for plugin %r: %s", path, framework.name, entry_spec.path
        )
        return entry_spec, model
    for _, model in found:
        framework.unload(model)
    if not found and not failed:
        if whole_error is not None:
            raise whole_error
        raise ModelLoadError(
            f"plugin {framework.name!r} does not recognise a model in the directory {str(path)!r}, "
            f"which holds {_listing(path)}; put the model file there, or pass its path"
        )
    models = sorted(Path(entry_spec.path).name for entry_spec, _ in found + failed)
    raise ModelLoadError(
        f"the directory {str(path)!r} holds {len(models)} models that plugin "
        f"{framework.name!r} recognises ({', '.join(models)}); a directory must hold one. "
        f"Pass the path of the one to serve, such as {str(path / models[0])!r}"
    )
