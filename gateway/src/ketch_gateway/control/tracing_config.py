"""The ``[tracing]`` table: OpenTelemetry tracing of the gateway and the wrappers it starts.

Without the table, OpenTelemetry's standard variables decide (tracing is off
unless they ask for it). With it, tracing is on (unless ``enabled = false``);
the keys it sets win over the variables, the keys it leaves out fall back to
them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

from ketch.telemetry.settings import (
    EXPORTERS,
    PROTOCOLS,
    TracingSettings,
    tracing_from_environment,
)
from ketch_gateway.control.config_reader import ConfigError, Reader

__all__ = ["GATEWAY_SERVICE_NAME", "read_tracing"]

GATEWAY_SERVICE_NAME: Final = "ketch-gateway"
TRACING_KEYS: Final = {
    "enabled",
    "exporter",
    "endpoint",
    "protocol",
    "sample_ratio",
    "service_name",
}


def _from_environment(environ: Mapping[str, str] | None) -> TracingSettings:
    try:
        return tracing_from_environment(GATEWAY_SERVICE_NAME, environ)
    except ValueError as error:
        raise ConfigError(f"tracing: {error}") from None


def _choice(reader: Reader, key: str, choices: tuple[str, ...], default: str) -> str:
    value = reader.string(key, default)
    if value not in choices:
        raise reader.error(key, f"unknown value {value!r}; expected one of {', '.join(choices)}")
    return value


def read_tracing(
    reader: Reader | None, environ: Mapping[str, str] | None = None
) -> TracingSettings:
    """The tracing settings: the table's (``reader``; None without one) over the variables'."""
    base = _from_environment(environ)
    if reader is None:
        return base
    reader.check_keys(set(TRACING_KEYS))
    ratio = reader.number("sample_ratio", base.sample_ratio, minimum=0, inclusive=True)
    if ratio > 1:
        raise reader.error("sample_ratio", f"is a share of traces between 0 and 1, got {ratio}")
    return dataclasses.replace(
        base,
        enabled=reader.boolean("enabled", True),
        exporter=_choice(reader, "exporter", EXPORTERS, base.exporter),
        endpoint=reader.optional_string("endpoint") or base.endpoint,
        protocol=_choice(reader, "protocol", PROTOCOLS, base.protocol),
        sample_ratio=ratio,
        service_name=reader.string("service_name", base.service_name),
    )
