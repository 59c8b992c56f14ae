"""Seeing inside Ketch's processes: OpenTelemetry tracing and Prometheus metrics.

Tracing is off unless OpenTelemetry's standard variables (or the gateway's
``[tracing]`` table) ask for it, and needs the ``ketch[tracing]`` extra; the
modules that import OpenTelemetry (``ketch.telemetry.tracing`` and
``ketch.telemetry.wrapper_tracing``) are loaded only when it is on. Metrics are
off unless ``ketch serve --metrics-port`` asks for them: the names that need
``prometheus_client`` (``WrapperMetrics``, ``MetricsEndpoint``,
``DeviceMemoryCollector``) load their module the first time they are used, so a
wrapper without metrics does not import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from ketch.telemetry.device_memory import device_memory
from ketch.telemetry.settings import (
    EXPORTERS,
    PROTOCOLS,
    TracingSettings,
    tracing_from_environment,
    wrapper_environment,
)
from ketch.telemetry.wrapper_telemetry import WrapperTelemetry, wrapper_telemetry

if TYPE_CHECKING:  # what __getattr__ loads on first use, for type checkers
    from ketch.telemetry.wrapper_metrics import (
        DeviceMemoryCollector,
        MetricsEndpoint,
        WrapperMetrics,
    )

_LOADED_ON_USE: Final = {
    "DeviceMemoryCollector": "ketch.telemetry.wrapper_metrics",
    "MetricsEndpoint": "ketch.telemetry.wrapper_metrics",
    "WrapperMetrics": "ketch.telemetry.wrapper_metrics",
}


def __getattr__(name: str) -> Any:
    module = _LOADED_ON_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'ketch.telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "EXPORTERS",
    "PROTOCOLS",
    "DeviceMemoryCollector",
    "MetricsEndpoint",
    "TracingSettings",
    "WrapperMetrics",
    "WrapperTelemetry",
    "device_memory",
    "tracing_from_environment",
    "wrapper_environment",
    "wrapper_telemetry",
]
