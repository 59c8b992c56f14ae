"""ONNX graphs in the PyTorch plugin: handed to ketch-onnx, which runs them on onnxruntime.

``ketch serve torch model.onnx`` is how the Caffe and Caffe2 lineage is served, so
the plugin keeps recognising ONNX files and delegates every hook for them to
:mod:`ketch_onnx.plugin` (installed by ``ketch-torch[onnx]``). PyTorch is never
imported for an ONNX graph.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Final

from ketch import ModelLoadError, ModelSpec

__all__ = ["TORCH_ONLY_OPTIONS", "load_onnx", "onnx_plugin_for"]

TORCH_ONLY_OPTIONS: Final = ("inputs", "outputs", "metadata", "examples")
"""Options that declare a signature; an ONNX graph declares its own."""


def _onnx_options(spec: ModelSpec) -> dict[str, str]:
    """The spec's options as ketch-onnx names them: ``threads`` is ``intra_op_threads``."""
    options = {key: value for key, value in spec.options.items() if key != "format"}
    refused = [key for key in TORCH_ONLY_OPTIONS if key in options]
    if refused:
        raise ModelLoadError(
            f"option(s) {', '.join(refused)} do not apply to {spec.path}: an ONNX graph declares "
            "its own inputs and outputs"
        )
    threads = options.pop("threads", None)
    if threads is not None:
        options.setdefault("intra_op_threads", threads)
    return options


def _plugin_module() -> ModuleType:
    try:
        import ketch_onnx.plugin
    except ImportError as error:
        raise ModelLoadError(
            f"ONNX graphs are served by ketch-onnx, which is not installed ({error}): "
            "pip install 'ketch-torch[onnx]'"
        ) from error
    return ketch_onnx.plugin


def load_onnx(spec: ModelSpec) -> object:
    """The ketch-onnx handle for the graph ``spec`` names, loaded with the spec's options."""
    _plugin_module()  # a ModelLoadError that says what to install, when it is missing
    from ketch_onnx.loading import load_graph
    from ketch_onnx.options import OnnxOptions

    options: Mapping[str, str] = _onnx_options(spec)
    return load_graph(Path(spec.path), OnnxOptions.from_options(options, plugin="torch"))


def onnx_plugin_for(model: object) -> ModuleType | None:
    """:mod:`ketch_onnx.plugin` when ``model`` is its handle, else None (without importing it)."""
    if "ketch_onnx.handle" not in sys.modules:
        return None
    from ketch_onnx.handle import OnnxModel

    if not isinstance(model, OnnxModel):
        return None
    return _plugin_module()
