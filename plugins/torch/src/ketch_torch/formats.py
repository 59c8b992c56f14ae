"""Which kind of PyTorch model a file holds, told from its contents (not its name).

TorchScript files and ``torch.export`` archives are both zip files, told apart
by the entries inside; an ONNX file is a protobuf ``ModelProto``. A zip written
by ``torch.save`` is a pickle, which this plugin refuses to load. Nothing here
imports PyTorch or ONNX.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Final

from ketch import ModelLoadError

__all__ = ["EXPORT", "ONNX", "TORCHSCRIPT", "detect_format"]

TORCHSCRIPT: Final = "torchscript"
EXPORT: Final = "export"
ONNX: Final = "onnx"

ONNX_SUFFIXES: Final = (".onnx",)
# A ModelProto starts with field 1 (ir_version, a varint): the tag byte 0x08.
ONNX_FIRST_BYTE: Final = b"\x08"


def _zip_entries(path: Path) -> list[str] | None:
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except zipfile.BadZipFile:
        return None


def _is_export_archive(entries: list[str]) -> bool:
    """``torch.export.save`` archives: ``archive_format`` (2.6 on) or the older layout."""
    return any(
        entry.rsplit("/", 1)[-1] in ("archive_format", "serialized_exported_program.json")
        for entry in entries
    )


def _is_torchscript(entries: list[str]) -> bool:
    return any("/code/" in entry or entry.startswith("code/") for entry in entries) and any(
        entry.rsplit("/", 1)[-1] == "constants.pkl" for entry in entries
    )


def _is_pickle_checkpoint(entries: list[str]) -> bool:
    return any(entry.rsplit("/", 1)[-1] == "data.pkl" for entry in entries)


def detect_format(path: Path) -> str | None:
    """``torchscript``, ``export`` or ``onnx``; None when the file is none of them.

    Raises ModelLoadError for a ``torch.save`` checkpoint, with what to do instead.
    """
    if not path.is_file():
        return None
    entries = _zip_entries(path)
    if entries is not None:
        if _is_export_archive(entries):
            return EXPORT
        if _is_torchscript(entries):
            return TORCHSCRIPT
        if _is_pickle_checkpoint(entries):
            raise ModelLoadError(
                f"{path} was written by torch.save: a pickle, which runs code when loaded and "
                "holds weights without the code that uses them. Save the model with "
                "torch.export.save (or torch.jit.save, or torch.onnx.export) instead"
            )
        return None
    if path.suffix.lower() in ONNX_SUFFIXES:
        return ONNX
    with path.open("rb") as file:
        first = file.read(1)
    return ONNX if first == ONNX_FIRST_BYTE else None
