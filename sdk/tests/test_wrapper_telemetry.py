"""``ketch serve``'s Prometheus metrics and OpenTelemetry spans, from a real process."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sdk_test_plugins import REFERENCE_PLUGIN

from ketch import WrapperCallError, WrapperClient, WrapperProcess, WrapperStartError, start_wrapper
from ketch.telemetry import TracingSettings, device_memory, tracing_from_environment
from ketch.wire import infer_request
from ketch_conformance.otlp_collector import SpanCollector

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


@pytest.fixture(scope="module")
def metered(softmax_path: Path) -> Iterator[WrapperProcess]:
    with start_wrapper(
        REFERENCE_PLUGIN,
        softmax_path,
        name="digits",
        version="3",
        max_batch=64,
        extra_args=["--metrics-port", "0"],
    ) as process:
        yield process


def test_metrics_are_off_unless_asked_for(softmax_path: Path) -> None:
    with start_wrapper(REFERENCE_PLUGIN, softmax_path, name="digits") as process:
        assert process.ready.metrics is None


def test_calls_errors_rows_and_plugin_time_are_counted(
    metered: WrapperProcess, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    metrics_address = metered.ready.metrics
    assert metrics_address is not None
    before = scrape(metrics_address)
    rows = digits[0]
    with WrapperClient(metered.address, model="digits") as client:
        for size in (1, 5, 20):
            client.infer({"input": rows[:size]})
        with pytest.raises(WrapperCallError) as refused:
            client.infer({"input": rows[:2, :10]})
        assert refused.value.code == "INVALID_ARGUMENT"
        with pytest.raises(WrapperCallError) as unknown:
            client.infer({"input": rows[:1]}, model="nope")
        assert unknown.value.code == "NOT_FOUND"
        client.model_metadata()
    after = scrape(metrics_address)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    labels = {"model": "digits", "version": "3"}
    infer = {**labels, "method": "ModelInfer"}
    assert grew("ketch_wrapper_calls_total", **infer, code="OK") == 3
    assert grew("ketch_wrapper_calls_total", **infer, code="INVALID_ARGUMENT") == 1
    assert grew("ketch_wrapper_calls_total", **infer, code="NOT_FOUND") == 1
    assert grew("ketch_wrapper_call_errors_total", **infer) == 2
    assert grew("ketch_wrapper_call_errors_total", **infer, code="OK") == 0
    assert grew("ketch_wrapper_calls_total", **labels, method="ModelMetadata", code="OK") == 1
    assert grew("ketch_wrapper_call_latency_seconds_count", **infer) == 5
    # only the three good batches reach the plugin: 1 + 5 + 20 rows
    assert grew("ketch_wrapper_batch_rows_count", **labels) == 3
    assert grew("ketch_wrapper_batch_rows_sum", **labels) == 26
    assert grew("ketch_wrapper_batch_rows_bucket", **labels, le="4.0") == 1
    assert grew("ketch_wrapper_predict_latency_seconds_count", **labels) == 3
    assert value(after, "ketch_wrapper_calls_in_flight", **labels) == 0
    assert value(after, "ketch_wrapper_model_load_seconds", **labels) > 0
    assert value(after, "ketch_wrapper_model_info", **labels, device="cpu") == 1
    assert value(after, "process_resident_memory_bytes") > 10_000_000
    # a CPU model reports no device memory (the family is declared, with no series)
    assert value(after, "ketch_wrapper_device_memory_bytes") == 0


def test_cpu_and_unknown_devices_report_no_device_memory() -> None:
    assert device_memory("cpu") == {}
    assert device_memory("tpu:3") == {}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, TracingSettings(service_name="s")),
        ({"OTEL_TRACES_EXPORTER": "none"}, TracingSettings(service_name="s")),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"},
            TracingSettings(service_name="s"),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
            TracingSettings(enabled=True, service_name="s"),
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "console",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            },
            TracingSettings(enabled=True, exporter="console", sample_ratio=0.1, service_name="s"),
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            TracingSettings(enabled=True, protocol="http/protobuf", service_name="s"),
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "always_off"},
            TracingSettings(enabled=True, sample_ratio=0.0, service_name="s"),
        ),
    ],
)
def test_tracing_follows_the_standard_variables(
    environ: dict[str, str], expected: TracingSettings
) -> None:
    assert tracing_from_environment("s", environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: unknown protocol",
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_TRACES_SAMPLER": "traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "lots",
            },
            "OTEL_TRACES_SAMPLER_ARG: expected a ratio between 0 and 1, got 'lots'",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "jaeger_remote"},
            "OTEL_TRACES_SAMPLER: unknown sampler 'jaeger_remote'",
        ),
    ],
)
def test_unusable_tracing_variables_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tracing_from_environment("s", environ)


def test_a_bad_tracing_variable_stops_ketch_serve_with_a_message(softmax_path: Path) -> None:
    with pytest.raises(WrapperStartError, match="OTEL_TRACES_EXPORTER: unknown exporter"):
        start_wrapper(
            REFERENCE_PLUGIN,
            softmax_path,
            env={"OTEL_TRACES_EXPORTER": "zipkin"},
            echo_stderr=False,
        )


@pytest.fixture(scope="module")
def collector() -> Iterator[SpanCollector]:
    with SpanCollector() as collector:
        yield collector


def test_a_traced_call_continues_the_callers_trace_down_to_the_plugin(
    softmax_path: Path, collector: SpanCollector, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    caller_trace = "0af7651916cd43dd8448eb211c80319c"
    caller_span = "b7ad6b7169203331"
    environ = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0",  # only the caller's decision records anything
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    with start_wrapper(
        REFERENCE_PLUGIN, softmax_path, name="digits", version="3", env=environ
    ) as process:
        request = infer_request({"input": digits[0][:7]}, model="digits")
        with grpc.insecure_channel(process.address) as channel:
            call = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelInfer",
                request_serializer=None,
                response_deserializer=None,
            )
            call(
                request.SerializeToString(),
                metadata=(("traceparent", f"00-{caller_trace}-{caller_span}-01"),),
            )
            # an unsampled caller: nothing may be recorded for it
            call(
                request.SerializeToString(),
                metadata=(("traceparent", f"00-{'1' * 32}-{'2' * 16}-00"),),
            )
            # no caller context: the wrapper's own ratio (0) decides
            call(request.SerializeToString())
        spans = collector.wait_for(
            lambda found: any(s.name == "ketch_batch_predict" for s in found)
        )
        assert process.stop() == 0
    spans = collector.spans()
    server = [s for s in spans if s.name == "inference.GRPCInferenceService/ModelInfer"]
    predict = [s for s in spans if s.name == "ketch_batch_predict"]
    assert len(server) == 1
    assert len(predict) == 1
    assert server[0].service == "ketch-serve"
    assert server[0].trace_id == caller_trace
    assert server[0].parent_span_id == caller_span
    assert server[0].attributes["ketch.batch.rows"] == 7
    assert server[0].attributes["ketch.replica"] == process.address
    assert server[0].attributes["rpc.grpc.status_code"] == 0
    assert predict[0].trace_id == caller_trace
    assert predict[0].parent_span_id == server[0].span_id
    assert predict[0].attributes["ketch.batch.rows"] == 7
    assert predict[0].attributes["ketch.plugin"] == REFERENCE_PLUGIN
    assert server[0].start_ns <= predict[0].start_ns <= predict[0].end_ns <= server[0].end_ns
