"""The table of ONNX operators the converter turns into PyTorch calls.

It covers what exporters write for multilayer perceptrons and convolutional
networks, including the older opsets that Caffe2 and Caffe converters wrote.
An operator outside the table is named when the model loads.
"""

from __future__ import annotations

from ketch_torch import onnx_elementwise, onnx_shapes, onnx_vision
from ketch_torch.onnx_node import OPERATORS

__all__ = ["MODULES", "OPERATORS"]

MODULES = (onnx_elementwise, onnx_shapes, onnx_vision)
"""The modules whose builders fill :data:`OPERATORS` when they are imported."""
