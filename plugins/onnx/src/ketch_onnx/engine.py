"""onnxruntime itself: importing it with a useful error, and building sessions.

Imported lazily, so that discovering plugins never loads onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Final

from ketch import ModelLoadError
from ketch_onnx.options import OnnxOptions

__all__ = ["ERRORS_ONLY", "build_session", "onnxruntime"]

ERRORS_ONLY: Final = 3
"""onnxruntime's log severity for errors: its warnings (opset notes, fallbacks Ketch
checks itself) would otherwise flood the wrapper's log."""


def onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module; ModelLoadError says what to install when it is missing."""
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ModelLoadError(
            f"onnxruntime is not installed ({error}): install ketch-onnx[cpu], or "
            "ketch-onnx[gpu] for the CUDA build"
        ) from error
    ort.set_default_logger_severity(ERRORS_ONLY)
    module: ModuleType = ort
    return module


def _session_options(ort: ModuleType, options: OnnxOptions) -> Any:
    settings = ort.SessionOptions()
    settings.log_severity_level = ERRORS_ONLY
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    settings.graph_optimization_level = levels[options.optimization]
    if options.intra_op_threads is not None:
        settings.intra_op_num_threads = options.intra_op_threads
    if options.inter_op_threads is not None:
        settings.inter_op_num_threads = options.inter_op_threads
        if options.inter_op_threads > 1:
            settings.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    if options.save_optimized is not None:
        settings.optimized_model_filepath = str(options.save_optimized)
    return settings


def build_session(
    path: Path, graph: str | bytes, options: OnnxOptions, providers: list[Any]
) -> Any:
    """An ``InferenceSession`` for ``graph`` (a file or a model's bytes) on ``providers``.

    ModelLoadError says why onnxruntime cannot build it, naming the model's ``path``.
    """
    ort = onnxruntime()
    try:
        return ort.InferenceSession(
            graph, sess_options=_session_options(ort, options), providers=providers
        )
    except Exception as error:  # onnxruntime's own error types, one per status code
        raise ModelLoadError(f"{path}: onnxruntime cannot load the graph: {error}") from error
