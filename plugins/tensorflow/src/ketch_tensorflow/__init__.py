"""Ketch's TensorFlow plugin: serve SavedModel directories and Keras 3 ``.keras`` files.

The hooks live in :mod:`ketch_tensorflow.plugin`; this package re-exports the
handle type, the options and the device names for those who build on it.
TensorFlow itself is imported only when a model is loaded.
"""

from ketch_tensorflow.devices import Device, available_devices, resolve_device
from ketch_tensorflow.loading import ServingFunction, model_format
from ketch_tensorflow.model import TensorFlowModel
from ketch_tensorflow.options import DEFAULT_SIGNATURE, KNOWN_OPTIONS, TensorFlowOptions

__all__ = [
    "DEFAULT_SIGNATURE",
    "KNOWN_OPTIONS",
    "Device",
    "ServingFunction",
    "TensorFlowModel",
    "TensorFlowOptions",
    "available_devices",
    "model_format",
    "resolve_device",
]
