"""Ketch's PyTorch plugin: TorchScript, ``torch.export`` archives and ONNX graphs.

The hooks live in :mod:`ketch_torch.plugin`; this package re-exports the handle
type, the option names and the metadata file's suffix for those who build on it.
Importing it does not import PyTorch.
"""

from ketch_torch.declared import METADATA_SUFFIX
from ketch_torch.handle import PLATFORM, TorchModel
from ketch_torch.options import DTYPES, FORMATS, KNOWN_OPTIONS, TorchOptions

__all__ = [
    "DTYPES",
    "FORMATS",
    "KNOWN_OPTIONS",
    "METADATA_SUFFIX",
    "PLATFORM",
    "TorchModel",
    "TorchOptions",
]
