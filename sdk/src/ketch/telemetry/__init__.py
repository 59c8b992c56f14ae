"""Seeing inside Ketch's processes: OpenTelemetry tracing and Prometheus metrics.

Tracing is off unless OpenTelemetry's standard variables (or the gateway's
``[tracing]`` table) ask for it, and needs the ``ketch[tracing]`` extra; the
modules that import OpenTelemetry (``ketch.telemetry.tracing`` and
``ketch.telemetry.wrapper_tracing``) are loaded only when it is on.
"""

from ketch.telemetry.device_memory import DeviceMemoryCollector, device_memory
from ketch.telemetry.settings import (
    EXPORTERS,
    PROTOCOLS,
    TracingSettings,
    tracing_from_environment,
    wrapper_environment,
)
from ketch.telemetry.wrapper_metrics import MetricsEndpoint, WrapperMetrics
from ketch.telemetry.wrapper_telemetry import WrapperTelemetry, wrapper_telemetry

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
