"""Ketch's ONNX plugin: ONNX graphs served on onnxruntime, the ONNX community's engine.

The hooks live in :mod:`ketch_onnx.plugin`; this package re-exports the handle
type and the options for those who build on it (the PyTorch plugin does, for
``ketch serve torch model.onnx``). Importing it imports neither onnx nor onnxruntime.
"""

from ketch_onnx.handle import PLATFORM, OnnxModel
from ketch_onnx.options import KNOWN_OPTIONS, OnnxOptions

__all__ = ["KNOWN_OPTIONS", "PLATFORM", "OnnxModel", "OnnxOptions"]
