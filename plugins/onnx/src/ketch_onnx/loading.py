"""Loading an ONNX file: recognising it, one CPU session to describe and probe it.

onnxruntime reads the file itself, and the session reports the graph's signature, so
a plain graph never imports the ``onnx`` package (about two seconds of a replica's
start-up). onnx is imported only for a graph that must be changed before onnxruntime
runs it (:mod:`ketch_onnx.graph`: a legacy opset, a bfloat16 boundary, ``dtype=float16``),
and to say why a file that onnxruntime refuses is not a readable model.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Final

from ketch import ModelLoadError
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


def _session_on_the_file(path: Path, options: OnnxOptions) -> Any | None:
    """A CPU session on the file as it is; None when the graph must be changed first.

    A graph onnxruntime refuses goes the longer way too: an opset older than 7 is
    upgraded there, and any other fault is named there, by onnx or by onnxruntime.
    """
    from ketch_onnx.devices import CPU_PROVIDER
    from ketch_onnx.elements import BFLOAT16
    from ketch_onnx.engine import build_session

    if options.dtype == "float16":
        return None
    try:
        session = build_session(path, str(path), options, [CPU_PROVIDER])
    except ModelLoadError:
        return None
    values = [*session.get_inputs(), *session.get_outputs()]
    if any(value.type == f"tensor({BFLOAT16})" for value in values):
        return None
    return session


def load_graph(path: Path, options: OnnxOptions) -> OnnxModel:
    """The model at ``path`` on the CPU, its signature settled; ModelLoadError says why not."""
    from ketch_onnx.describe import describe
    from ketch_onnx.devices import CPU_PROVIDER, available_devices
    from ketch_onnx.engine import build_session, onnxruntime

    ort = onnxruntime()
    session = _session_on_the_file(path, options)
    as_exported = session is not None
    if session is None:
        from ketch_onnx.graph import prepare_graph

        graph = prepare_graph(path, options.dtype)
        session = build_session(path, graph.source, options, [CPU_PROVIDER])
    return describe(path, options, session, available_devices(ort), as_exported)
