"""Whether and where to trace: OpenTelemetry's standard variables, or Ketch's own settings.

Nothing here imports OpenTelemetry, so deciding that tracing is off costs no
import. Tracing is off unless something asks for it: ``OTEL_TRACES_EXPORTER``
set to an exporter, an OTLP endpoint variable, or (in the gateway) a
``[tracing]`` table. ``OTEL_SDK_DISABLED=true`` turns it off whatever else says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "EXPORTERS",
    "PROTOCOLS",
    "TracingSettings",
    "tracing_from_environment",
    "wrapper_environment",
]

EXPORTERS: Final = ("otlp", "console", "none")
"""``otlp`` sends spans to a collector; ``console`` prints them; ``none`` makes and
propagates them (wrappers still see the trace context) but sends them nowhere."""
PROTOCOLS: Final = ("grpc", "http/protobuf")


@dataclass(frozen=True)
class TracingSettings:
    """How a process traces.

    :param endpoint: the collector's OTLP endpoint; None leaves it to the exporter,
        which reads ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` and ``OTEL_EXPORTER_OTLP_ENDPOINT``
        (then ``localhost:4317`` for gRPC, ``localhost:4318`` for HTTP).
    :param sample_ratio: the share of new traces recorded; a request that arrives
        with a ``traceparent`` follows its caller's decision instead.
    :param service_name: the ``service.name`` resource attribute, unless
        ``OTEL_SERVICE_NAME`` says otherwise.
    """

    enabled: bool = False
    exporter: str = "otlp"
    endpoint: str | None = None
    protocol: str = "grpc"
    sample_ratio: float = 1.0
    service_name: str = "ketch"

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise ValueError(
                f"unknown trace exporter {self.exporter!r}; expected one of {', '.join(EXPORTERS)}"
            )
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"unknown OTLP protocol {self.protocol!r}; expected one of {', '.join(PROTOCOLS)}"
            )
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ValueError(f"the sample ratio is between 0 and 1, got {self.sample_ratio}")


_RATIO_SAMPLERS: Final = {"traceidratio", "parentbased_traceidratio"}
_FIXED_SAMPLERS: Final = {
    "always_on": 1.0,
    "parentbased_always_on": 1.0,
    "always_off": 0.0,
    "parentbased_always_off": 0.0,
}


def _sample_ratio(environ: Mapping[str, str]) -> float:
    sampler = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if sampler in _FIXED_SAMPLERS:
        return _FIXED_SAMPLERS[sampler]
    if sampler not in _RATIO_SAMPLERS:
        known = ", ".join([*_FIXED_SAMPLERS, *sorted(_RATIO_SAMPLERS)])
        raise ValueError(f"OTEL_TRACES_SAMPLER: unknown sampler {sampler!r} (Ketch takes {known})")
    argument = environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
    try:
        ratio = float(argument)
    except ValueError:
        raise ValueError(
            f"OTEL_TRACES_SAMPLER_ARG: expected a ratio between 0 and 1, got {argument!r}"
        ) from None
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG: expected a ratio between 0 and 1, got {ratio}")
    return ratio


def tracing_from_environment(
    service_name: str, environ: Mapping[str, str] | None = None
) -> TracingSettings:
    """The settings OpenTelemetry's standard variables ask for (off when they ask nothing).

    Read: ``OTEL_SDK_DISABLED``, ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``,
    ``none``), ``OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT`` and ``_PROTOCOL``,
    ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``. A value Ketch cannot
    honour raises ValueError naming the variable.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TracingSettings(service_name=service_name)
    exporters = [e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    exporters = [e for e in exporters if e]
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if exporters and exporters[0] == "none":
        return TracingSettings(service_name=service_name)
    if not exporters and not endpoint:
        return TracingSettings(service_name=service_name)
    exporter = exporters[0] if exporters else "otlp"
    if exporter not in EXPORTERS:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {exporter!r}; Ketch takes otlp, console, none"
        )
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: unknown protocol {protocol!r}; Ketch takes "
            f"{', '.join(PROTOCOLS)}"
        )
    return TracingSettings(
        enabled=True,
        exporter=exporter,
        protocol=protocol,
        sample_ratio=_sample_ratio(env),
        service_name=service_name,
    )


def wrapper_environment(
    settings: TracingSettings, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables that make a ``ketch serve`` child trace as ``settings`` say.

    The gateway sets them for the wrappers it starts, so that one ``[tracing]``
    table traces the whole chain. The gateway decides which traces are recorded
    (its batches carry the decision), so the child starts none of its own
    (``parentbased_always_off``). The endpoint is the settings', else the one the
    gateway's variables (``environ``, by default its own) name. Other exporter
    variables (headers, certificates: perhaps secrets) are not copied; a child keeps
    its own service name.
    """
    if not settings.enabled:
        return {}
    variables = {
        "OTEL_TRACES_EXPORTER": settings.exporter,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": settings.protocol,
        "OTEL_TRACES_SAMPLER": "parentbased_always_off",
    }
    env = os.environ if environ is None else environ
    if settings.endpoint is not None:
        variables["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = settings.endpoint
    else:  # as the gateway's own exporter reads them (a generic endpoint gets /v1/traces)
        for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            if env.get(name):
                variables[name] = env[name]
    return variables
