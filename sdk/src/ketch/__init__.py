"""Ketch: the wrapper contract, plugin discovery, the gRPC wrapper runtime and client.

A framework plugin implements the hooks in :mod:`ketch.hookspecs`, marked with
:data:`hookimpl`; ``ketch serve PLUGIN MODEL`` serves it over the Open
Inference Protocol; :class:`WrapperClient` calls it from Python.
"""

from ketch.allocator import tune_allocator
from ketch.client import (
    AsyncWrapperClient,
    ModelMetadata,
    ObserveResult,
    ServerMetadata,
    WrapperClient,
)
from ketch.datatypes import DATATYPES, datatype_of, numpy_dtype
from ketch.discovery import (
    DISABLE_VARIABLE,
    ENTRY_POINT_GROUP,
    EXTRA_VARIABLE,
    disabled_plugins,
    extra_plugins,
    installed_plugins,
    select_framework,
)
from ketch.errors import (
    ContractViolation,
    DeviceUnavailableError,
    InvalidInputError,
    KetchError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    PluginError,
    WrapperCallError,
)
from ketch.framework import Framework
from ketch.hookspecs import hookimpl, hookspec
from ketch.model_spec import ModelSpec
from ketch.process import ReadyInfo, WrapperProcess, WrapperStartError, start_wrapper
from ketch.runtime import ModelRuntime
from ketch.server import WrapperServer
from ketch.signature import (
    LABEL_KINDS,
    VARIABLE,
    Capabilities,
    DimensionRange,
    LabelSpec,
    Signature,
    TensorSpec,
    Tolerance,
)
from ketch.tensors import text_rows
from ketch.validation import validate_inputs, validate_labels, validate_outputs
from ketch.version import __version__

__all__ = [
    "DATATYPES",
    "DISABLE_VARIABLE",
    "ENTRY_POINT_GROUP",
    "EXTRA_VARIABLE",
    "LABEL_KINDS",
    "VARIABLE",
    "AsyncWrapperClient",
    "Capabilities",
    "ContractViolation",
    "DeviceUnavailableError",
    "DimensionRange",
    "Framework",
    "InvalidInputError",
    "KetchError",
    "LabelSpec",
    "ModelLoadError",
    "ModelMetadata",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "ModelRuntime",
    "ModelSpec",
    "ObserveResult",
    "PluginError",
    "ReadyInfo",
    "ServerMetadata",
    "Signature",
    "TensorSpec",
    "Tolerance",
    "WrapperCallError",
    "WrapperClient",
    "WrapperProcess",
    "WrapperServer",
    "WrapperStartError",
    "__version__",
    "datatype_of",
    "disabled_plugins",
    "extra_plugins",
    "hookimpl",
    "hookspec",
    "installed_plugins",
    "numpy_dtype",
    "select_framework",
    "start_wrapper",
    "text_rows",
    "tune_allocator",
    "validate_inputs",
    "validate_labels",
    "validate_outputs",
]
