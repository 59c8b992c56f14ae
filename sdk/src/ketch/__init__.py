"""Ketch: the wrapper contract, plugin discovery, the gRPC wrapper runtime and client.

A framework plugin implements the hooks in :mod:`ketch.hookspecs`, marked with
:data:`hookimpl`; ``ketch serve PLUGIN MODEL`` serves it over the Open
Inference Protocol; :class:`WrapperClient` calls it from Python.

``import ketch`` loads the contract only (the names a plugin author needs: the
hook markers, the data classes, the errors, the datatypes, and the helpers of
:mod:`ketch.authoring`), not gRPC. The rest
(clients, the wrapper runtime and process helpers, plugin discovery, the output
checks) is imported from here as before, and loaded the first time it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ketch.authoring import check_options, handles, option_choice, option_names
from ketch.calls import CallScope, current_call, serving_call
from ketch.datatypes import DATATYPES, datatype_of, numpy_dtype
from ketch.errors import (
    CallCancelled,
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
from ketch.hookspecs import hookimpl, hookspec
from ketch.model_spec import ModelSpec
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
from ketch.version import __version__

if TYPE_CHECKING:  # what __getattr__ loads on first use, for type checkers
    from ketch.allocator import tune_allocator
    from ketch.client import (
        AsyncWrapperClient,
        ModelMetadata,
        ObserveResult,
        ServerMetadata,
        WrapperClient,
    )
    from ketch.discovery import (
        DISABLE_VARIABLE,
        ENTRY_POINT_GROUP,
        EXTRA_VARIABLE,
        disabled_plugins,
        extra_plugins,
        installed_plugins,
        select_framework,
    )
    from ketch.framework import Framework
    from ketch.process import ReadyInfo, WrapperProcess, WrapperStartError, start_wrapper
    from ketch.runtime import ModelRuntime
    from ketch.server import WrapperServer
    from ketch.tls import ClientTls, ServerTls
    from ketch.validation import validate_inputs, validate_labels, validate_outputs

_LOADED_ON_USE: dict[str, str] = {
    # calling wrappers (gRPC)
    "AsyncWrapperClient": "ketch.client",
    "ModelMetadata": "ketch.client",
    "ObserveResult": "ketch.client",
    "ServerMetadata": "ketch.client",
    "WrapperClient": "ketch.client",
    # running wrappers
    "ModelRuntime": "ketch.runtime",
    "WrapperServer": "ketch.server",
    "ClientTls": "ketch.tls",
    "ServerTls": "ketch.tls",
    "ReadyInfo": "ketch.process",
    "WrapperProcess": "ketch.process",
    "WrapperStartError": "ketch.process",
    "start_wrapper": "ketch.process",
    "tune_allocator": "ketch.allocator",
    # finding plugins and checking what they answer
    "DISABLE_VARIABLE": "ketch.discovery",
    "ENTRY_POINT_GROUP": "ketch.discovery",
    "EXTRA_VARIABLE": "ketch.discovery",
    "Framework": "ketch.framework",
    "disabled_plugins": "ketch.discovery",
    "extra_plugins": "ketch.discovery",
    "installed_plugins": "ketch.discovery",
    "select_framework": "ketch.discovery",
    "validate_inputs": "ketch.validation",
    "validate_labels": "ketch.validation",
    "validate_outputs": "ketch.validation",
}
"""The public names outside the contract, by the module that defines them."""


def __getattr__(name: str) -> Any:
    module = _LOADED_ON_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'ketch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DATATYPES",
    "DISABLE_VARIABLE",
    "ENTRY_POINT_GROUP",
    "EXTRA_VARIABLE",
    "LABEL_KINDS",
    "VARIABLE",
    "AsyncWrapperClient",
    "CallCancelled",
    "CallScope",
    "Capabilities",
    "ClientTls",
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
    "ServerTls",
    "Signature",
    "TensorSpec",
    "Tolerance",
    "WrapperCallError",
    "WrapperClient",
    "WrapperProcess",
    "WrapperServer",
    "WrapperStartError",
    "__version__",
    "check_options",
    "current_call",
    "datatype_of",
    "disabled_plugins",
    "extra_plugins",
    "handles",
    "hookimpl",
    "hookspec",
    "installed_plugins",
    "numpy_dtype",
    "option_choice",
    "option_names",
    "select_framework",
    "serving_call",
    "start_wrapper",
    "text_rows",
    "tune_allocator",
    "validate_inputs",
    "validate_labels",
    "validate_outputs",
]
