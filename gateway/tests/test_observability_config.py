"""The ``[tracing]`` table and the ``dashboard`` setting: read, merged with OTEL_*, checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ketch.telemetry import TracingSettings, wrapper_environment
from ketch_gateway import ConfigError, parse_config

MODEL = """
[[models]]
name = "digits"
  [[models.versions]]
  version = "1"
  addresses = ["127.0.0.1:8001"]
"""


@pytest.fixture(autouse=True)
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
    ):
        monkeypatch.delenv(name, raising=False)


def tracing(text: str, base: Path) -> TracingSettings:
    return parse_config(text + MODEL, "ketch.toml", base).tracing


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    assert tracing("", tmp_path) == TracingSettings(service_name="ketch-gateway")


def test_a_tracing_table_turns_it_on(tmp_path: Path) -> None:
    settings = tracing(
        '[tracing]\nendpoint = "http://collector:4317"\nsample_ratio = 0.1\n', tmp_path
    )
    assert settings == TracingSettings(
        enabled=True,
        endpoint="http://collector:4317",
        sample_ratio=0.1,
        service_name="ketch-gateway",
    )
    assert wrapper_environment(settings) == {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317",
        "OTEL_TRACES_SAMPLER": "parentbased_always_off",
    }


def test_the_standard_variables_turn_it_on_and_the_table_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    from_variables = tracing("", tmp_path)
    assert from_variables == TracingSettings(
        enabled=True, protocol="http/protobuf", sample_ratio=0.25, service_name="ketch-gateway"
    )
    assert wrapper_environment(TracingSettings()) == {}
    gateway_variables = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=secret",
    }
    assert wrapper_environment(from_variables, gateway_variables) == {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_always_off",
    }, "wrappers send where the gateway's variables say, without its headers"
    overridden = tracing('[tracing]\nsample_ratio = 1\nservice_name = "edge"\n', tmp_path)
    assert overridden == TracingSettings(
        enabled=True, protocol="http/protobuf", sample_ratio=1.0, service_name="edge"
    )
    assert not tracing("[tracing]\nenabled = false\n", tmp_path).enabled


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[tracing]\nsample_ratio = 1.5", "tracing.sample_ratio: is a share of traces between"),
        ('[tracing]\nexporter = "jaeger"', "tracing.exporter: unknown value 'jaeger'"),
        ('[tracing]\nprotocol = "udp"', "tracing.protocol: unknown value 'udp'"),
        ("[tracing]\nratio = 0.1", "tracing.ratio: unknown key"),
        ('[gateway]\ndashboard = "public"', "gateway.dashboard: unknown access 'public'"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        tracing(table + "\n", tmp_path)


def test_a_bad_variable_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ConfigError, match="tracing: OTEL_TRACES_EXPORTER: unknown exporter"):
        tracing("", tmp_path)


@pytest.mark.parametrize("access", ["token", "open", "off"])
def test_dashboard_access(tmp_path: Path, access: str) -> None:
    text = f'[gateway]\ndashboard = "{access}"\n' + MODEL
    assert parse_config(text, "ketch.toml", tmp_path).settings.dashboard == access
    assert parse_config(MODEL, "ketch.toml", tmp_path).settings.dashboard == "token"
