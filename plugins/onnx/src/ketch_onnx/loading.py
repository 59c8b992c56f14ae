"""Loading an ONNX file: recognising it, preparing its graph, and one CPU session to probe it."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Final

from ketch_onnx.handle import OnnxModel
from ketch_onnx.options import OnnxOptions

__all__ = ["is_onnx_file", "load_graph"]

ONNX_SUFFIX: Final = ".onnx"
# A ModelProto starts with field 1 (ir_version, a varint): the tag byte 0x08.
ONNX_FIRST_BYTE: Final = b"\x08"


def is_onnx_file(path: Path) -> bool:
    """Whether ``path`` is a file that looks like an ONNX model (by name or first byte)."""
    if not path.is_file() or zipfile.is_zipfile(path):
        return False
    if path.suffix.lower() == ONNX_SUFFIX:
        return True
    with path.open("rb") as file:
        return file.read(1) == ONNX_FIRST_BYTE


def load_graph(path: Path, options: OnnxOptions) -> OnnxModel:
    """The model at ``path`` on the CPU, its signature settled; ModelLoadError says why not."""
    from ketch_onnx.describe import describe
    from ketch_onnx.devices import CPU_PROVIDER, available_devices
    from ketch_onnx.engine import build_session, onnxruntime
    from ketch_onnx.graph import prepare_graph

    ort = onnxruntime()
    graph = prepare_graph(path, options.dtype)
    session = build_session(path, graph.source, options, [CPU_PROVIDER])
    return describe(path, graph.model, options, session, available_devices(ort))
