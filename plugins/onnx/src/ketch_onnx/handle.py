"""The plugin's model handle. It imports neither onnx nor onnxruntime, so hooks test it cheaply."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ketch import Signature
from ketch_onnx.options import OnnxOptions

__all__ = ["PLATFORM", "OnnxModel"]

PLATFORM: Final = "onnxruntime_onnx"
"""The platform name ModelMetadata reports (Triton's name for the same backend)."""


@dataclass(frozen=True, slots=True)
class OnnxModel:
    """A loaded graph: its onnxruntime session, its signature, and where it runs.

    ``fixed_batch`` is the batch size the graph was exported for, when its inputs
    take no other; ``as_exported`` whether the session runs the file as it is (else
    a graph that :mod:`ketch_onnx.graph` changed); ``device`` is where the session
    runs and ``placed`` whether ``ketch_place`` has run. Placing on another device
    prepares the graph from ``path`` again rather than keeping a copy of its weights here.
    """

    path: Path
    options: OnnxOptions
    session: Any
    signature: Signature
    fixed_batch: int | None
    as_exported: bool = True
    device: str = "cpu"
    placed: bool = False
