"""Prometheus metrics of one ``ketch serve`` process, served on their own port.

Calls and errors by gRPC method and status code, calls in flight, the rows of
each batch and the time the plugin took for it, the model's load time, the
process's memory and CPU (prometheus-client's process collector), and, where
the model sits on an accelerator, the device memory its framework reports.
Every Ketch series carries the model and version, so one dashboard covers every
wrapper.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ketch.telemetry.device_memory import device_memory

__all__ = [
    "CALL_LATENCY_BUCKETS",
    "ROW_BUCKETS",
    "DeviceMemoryCollector",
    "MetricsEndpoint",
    "WrapperMetrics",
]

ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
CALL_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class DeviceMemoryCollector(Collector):
    """``ketch_wrapper_device_memory_bytes``, read at each scrape."""

    def __init__(self, device: str, model: str, version: str) -> None:
        self.device = device
        self.model = model
        self.version = version

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The readings, when the device reports any."""
        family = GaugeMetricFamily(
            "ketch_wrapper_device_memory_bytes",
            "Accelerator memory in use by the model's framework, by state: allocated "
            "(tensors), reserved (the framework's cache), peak (the most allocated so far).",
            labels=["model", "version", "device", "state"],
        )
        for state, value in device_memory(self.device).items():
            family.add_metric([self.model, self.version, self.device, state], value)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The family, without reading the device (registration must not touch a GPU)."""
        yield GaugeMetricFamily(
            "ketch_wrapper_device_memory_bytes",
            "Accelerator memory in use by the model's framework.",
            labels=["model", "version", "device", "state"],
        )


class WrapperMetrics:
    """The instruments of a wrapper serving ``model`` ``version`` with ``plugin`` on ``device``."""

    def __init__(self, model: str, version: str, plugin: str, device: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.labels = (model, version)
        ProcessCollector(registry=self.registry)
        self.registry.register(DeviceMemoryCollector(device, model, version))
        registry = self.registry
        self.calls = Counter(
            "ketch_wrapper_calls",
            "gRPC calls answered, by method and status code (OK for a success).",
            ["model", "version", "method", "code"],
            registry=registry,
        )
        self.errors = Counter(
            "ketch_wrapper_call_errors",
            "gRPC calls answered with a status other than OK, by method and code.",
            ["model", "version", "method", "code"],
            registry=registry,
        )
        self.call_latency = Histogram(
            "ketch_wrapper_call_latency_seconds",
            "Time from a call's arrival to its answer, by method.",
            ["model", "version", "method"],
            buckets=CALL_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "ketch_wrapper_calls_in_flight",
            "gRPC calls being answered now.",
            ["model", "version"],
            registry=registry,
        )
        self.batch_rows = Histogram(
            "ketch_wrapper_batch_rows",
            "Rows in each batch given to the plugin's ketch_batch_predict.",
            ["model", "version"],
            buckets=ROW_BUCKETS,
            registry=registry,
        )
        self.predict_latency = Histogram(
            "ketch_wrapper_predict_latency_seconds",
            "Time the plugin's ketch_batch_predict took for a batch (the framework's share).",
            ["model", "version", "plugin"],
            buckets=CALL_LATENCY_BUCKETS,
            registry=registry,
        )
        self.load_time = Gauge(
            "ketch_wrapper_model_load_seconds",
            "Time the model took to load, be placed on its device and describe itself.",
            ["model", "version", "plugin"],
            registry=registry,
        )
        self.info = Gauge(
            "ketch_wrapper_model_info",
            "1 for the model this wrapper serves, with its plugin, device and platform.",
            ["model", "version", "plugin", "device", "platform"],
            registry=registry,
        )
        self.plugin = plugin
        self.device = device
        self.in_flight_now = self.in_flight.labels(*self.labels)
        self.rows = self.batch_rows.labels(*self.labels)
        self.predict_seconds = self.predict_latency.labels(*self.labels, plugin)

    def model_loaded(self, seconds: float, platform: str) -> None:
        """Record the load time and the model's description."""
        self.load_time.labels(*self.labels, self.plugin).set(seconds)
        self.info.labels(*self.labels, self.plugin, self.device, platform or "unknown").set(1)

    def serve(self, host: str, port: int) -> MetricsEndpoint:
        """Serve ``/metrics`` on ``host:port`` (0 picks a free port), in a thread of its own."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsEndpoint(server, thread)


class MetricsEndpoint:
    """The HTTP server of the metrics: where it listens, and how to stop it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server.server_port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5.0)
