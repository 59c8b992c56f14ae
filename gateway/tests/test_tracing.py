"""OpenTelemetry traces of the gateway: request spans, their children, batch spans and links.

In process, with the SDK's in-memory exporter behind the gateway's own tracer
provider; one test runs the real processes, a gateway and the wrapper it starts,
exporting over OTLP to a collector in the test process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from gateway_test_support import SLOW_PLUGIN, app_toml, serve_ensemble
from in_process import LocalModels, LocalReplica
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from ketch.telemetry import TracingSettings
from ketch.telemetry.tracing import Tracing
from ketch_conformance.otlp_collector import SpanCollector
from ketch_gateway import Gateway, create_app, parse_config, start_gateway, write_config
from ketch_gateway.serving.replicas import ReplicaClient

PREDICT_ROUTE = "POST /apps/{app}/predict"


class Recording:
    """A gateway's finished spans, and the replicas it reached (to read what they were sent)."""

    def __init__(self, models: LocalModels) -> None:
        self.exporter = InMemorySpanExporter()
        self.models = models
        self.replicas: list[LocalReplica] = []
        self.tracing: Tracing | None = None

    def connect(self, address: str) -> ReplicaClient:
        replica = self.models.connect(address)
        assert isinstance(replica, LocalReplica)
        self.replicas.append(replica)
        return replica

    def spans(self) -> list[ReadableSpan]:
        assert self.tracing is not None
        assert self.tracing.flush()
        return list(self.exporter.get_finished_spans())

    def sent_metadata(self) -> list[tuple[tuple[str, str], ...]]:
        return [getattr(replica, "last_metadata", ()) for replica in self.replicas]


@contextlib.contextmanager
def traced_gateway(
    text: str, folder: Path, models: LocalModels, ratio: float = 1.0
) -> Iterator[tuple[TestClient, Recording]]:
    recording = Recording(models)
    config = parse_config(text, str(folder / "ketch.toml"), folder)
    recording.tracing = Tracing(
        TracingSettings(enabled=True, sample_ratio=ratio, service_name="ketch-gateway"),
        exporter=recording.exporter,
    )
    gateway = Gateway(config, connect=recording.connect, tracing=recording.tracing)
    with TestClient(create_app(gateway), raise_server_exceptions=False) as client:
        yield client, recording


def traceparent_fields(header: str) -> tuple[int, int, bool]:
    """A W3C traceparent's trace id, parent span id, and whether it is sampled."""
    version, trace, span, flags = header.split("-")
    assert version == "00"
    return int(trace, 16), int(span, 16), bool(int(flags, 16) & 1)


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


@pytest.fixture(scope="module")
def digits_address(local_models: LocalModels, digits_model: Path) -> str:
    return local_models.serve("digits", "sklearn", digits_model)


def cached_digits(address: str) -> str:
    return f"""
[[models]]
name = "digits"
  [models.cache]
  exact = true
  [[models.versions]]
  version = "1"
  addresses = ["{address}"]

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 5000
"""


def test_a_request_span_has_children_for_the_cache_the_queue_and_its_batch(
    tmp_path: Path,
    local_models: LocalModels,
    digits_address: str,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    row = digits[0][0].tolist()
    with traced_gateway(cached_digits(digits_address), tmp_path, local_models) as (client, rec):
        answer = client.post("/apps/digits/predict", json={"input": row})
        assert answer.status_code == 200
        spans = rec.spans()
        metadata = rec.sent_metadata()
        again = client.post("/apps/digits/predict", json={"input": row})
        assert again.status_code == 200
        later = rec.spans()[len(spans) :]

    [request] = named(spans, PREDICT_ROUTE)
    assert request.kind is SpanKind.SERVER
    assert request.parent is None
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/apps/{app}/predict"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["ketch.query_id"] == answer.json()["query_id"]
    assert request.attributes["ketch.default"] is False
    children = {span.name: span for span in spans if parent_of(span) == span_id(request)}
    assert set(children) == {"ketch.cache.lookup", "ketch.queue.wait", "ketch.batch.call"}
    assert children["ketch.cache.lookup"].attributes == {
        "ketch.model": "digits",
        "ketch.version": "1",
        "ketch.rows": 1,
        "ketch.cache.exact": 0,
        "ketch.cache.approximate": 0,
        "ketch.cache.coalesced": 0,
        "ketch.cache.miss": 1,
    }
    wait, call = children["ketch.queue.wait"], children["ketch.batch.call"]
    assert wait.end_time is not None
    assert call.start_time is not None
    assert wait.end_time <= call.start_time
    [batch] = named(spans, "ketch.batch")
    assert batch.kind is SpanKind.CLIENT
    assert batch.parent is None, "a batch starts a trace of its own"
    assert [link.context.span_id for link in batch.links] == [span_id(request)]
    assert batch.attributes is not None
    assert batch.attributes["ketch.batch.rows"] == 1
    assert batch.attributes["ketch.batch.requests"] == 1
    assert batch.attributes["ketch.replica"] == digits_address
    assert [link.context.span_id for link in call.links] == [span_id(batch)]
    # the wrapper was sent the batch span's context, sampled
    [sent] = [dict(pairs)["traceparent"] for pairs in metadata if pairs]
    assert traceparent_fields(sent) == (trace_id(batch), span_id(batch), True)

    # the same row again: answered by the cache, so no queue and no batch
    [cached] = named(later, PREDICT_ROUTE)
    assert {span.name for span in later if parent_of(span) == span_id(cached)} == {
        "ketch.cache.lookup"
    }
    [lookup] = named(later, "ketch.cache.lookup")
    assert lookup.attributes is not None
    assert lookup.attributes["ketch.cache.exact"] == 1
    assert not named(later, "ketch.batch")


def test_one_batch_span_links_every_request_it_served(
    tmp_path: Path,
    local_models: LocalModels,
    softmax_model: Path,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    slow = local_models.serve("slow", SLOW_PLUGIN, softmax_model, options={"predict_delay": "0.3"})
    text = f"""
[[models]]
name = "slow"
  [models.batching]
  policy = "fixed"
  size = 16
  [[models.versions]]
  version = "1"
  addresses = ["{slow}"]

[[apps]]
name = "slow"
models = ["slow"]
latency_objective_ms = 10000
"""
    rows = digits[0][:8].astype(np.float32)
    with traced_gateway(text, tmp_path, local_models) as (client, rec):

        def ask(index: int) -> int:
            body = {"input": rows[index].tolist()}
            return int(client.post("/apps/slow/predict", json=body).status_code)

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(ask, range(8))) == [200] * 8
        spans = rec.spans()

    requests = {span_id(span): span for span in named(spans, PREDICT_ROUTE)}
    assert len(requests) == 8
    batches = named(spans, "ketch.batch")
    linked = [link.context.span_id for batch in batches for link in batch.links]
    assert sorted(linked) == sorted(requests), "every request is linked by exactly one batch"
    assert max(len(batch.links) for batch in batches) >= 2, "requests that waited shared a batch"
    for batch in batches:
        assert batch.attributes is not None
        assert batch.attributes["ketch.batch.requests"] == len(batch.links)
        assert batch.attributes["ketch.batch.rows"] == len(batch.links)
    calls = named(spans, "ketch.batch.call")
    parents = [parent for call in calls if (parent := parent_of(call)) is not None]
    assert sorted(parents) == sorted(requests)
    assert len(calls) == len(requests)


def test_the_policy_gets_select_and_combine_spans(
    tmp_path: Path,
    local_models: LocalModels,
    ensemble_models: dict[str, Path],
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    text = serve_ensemble(local_models, ensemble_models) + app_toml("ensemble", "exp4")
    with traced_gateway(text, tmp_path, local_models) as (client, rec):
        answer = client.post("/apps/ensemble/predict", json={"input": digits[0][5].tolist()})
        assert answer.status_code == 200
        spans = rec.spans()
    [request] = named(spans, PREDICT_ROUTE)
    children = [span for span in spans if parent_of(span) == span_id(request)]
    names = sorted(span.name for span in children)
    assert names.count("ketch.policy.select") == 1
    assert names.count("ketch.policy.combine") == 1
    assert names.count("ketch.queue.wait") == 3
    assert names.count("ketch.batch.call") == 3
    [select] = named(children, "ketch.policy.select")
    assert select.attributes is not None
    assert select.attributes["ketch.policy"] == "exp4"
    selected = select.attributes["ketch.models.selected"]
    assert isinstance(selected, tuple)
    assert sorted(map(str, selected)) == ["good", "weak", "wrong"]
    [combine] = named(children, "ketch.policy.combine")
    assert select.end_time is not None
    assert combine.start_time is not None
    assert select.end_time <= combine.start_time
    assert len(named(spans, "ketch.batch")) == 3


def test_an_incoming_traceparent_decides_sampling(
    tmp_path: Path,
    local_models: LocalModels,
    digits_address: str,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    caller_span = "00f067aa0ba902b7"
    text = cached_digits(digits_address)
    with traced_gateway(text, tmp_path, local_models, ratio=0.0) as (client, rec):
        sampled = client.post(
            "/apps/digits/predict",
            json={"input": digits[0][1].tolist()},
            headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
        )
        assert sampled.status_code == 200
        recorded = rec.spans()
        unsampled = client.post(
            "/apps/digits/predict",
            json={"input": digits[0][2].tolist()},
            headers={"traceparent": f"00-{'a' * 32}-{'b' * 16}-00"},
        )
        assert unsampled.status_code == 200
        plain = client.post("/apps/digits/predict", json={"input": digits[0][3].tolist()})
        assert plain.status_code == 200
        assert client.get("/metrics").status_code == 200
        after = rec.spans()
        metadata = rec.sent_metadata()
    [request] = named(recorded, PREDICT_ROUTE)
    assert f"{trace_id(request):032x}" == caller_trace
    assert f"{parent_of(request):016x}" == caller_span
    assert len(named(recorded, "ketch.batch")) == 1
    assert after == recorded, "nothing more is recorded at a ratio of 0 or for unsampled callers"
    # untraced requests make no batch span and send the wrapper no context
    assert all(sent == () for sent in metadata)


def test_tracing_off_creates_no_tracer_and_sends_no_context(
    tmp_path: Path,
    local_models: LocalModels,
    digits_address: str,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    replicas: list[LocalReplica] = []

    def connect(address: str) -> ReplicaClient:
        replica = local_models.connect(address)
        assert isinstance(replica, LocalReplica)
        replicas.append(replica)
        return replica

    config = parse_config(cached_digits(digits_address), str(tmp_path / "ketch.toml"), tmp_path)
    assert not config.tracing.enabled
    gateway = Gateway(config, connect=connect)
    assert gateway.tracing is None
    with TestClient(create_app(gateway)) as client:
        answer = client.post(
            "/apps/digits/predict",
            json={"input": digits[0][4].tolist()},
            headers={"traceparent": f"00-{'c' * 32}-{'d' * 16}-01"},
        )
        assert answer.status_code == 200
    assert [getattr(r, "last_metadata", ()) for r in replicas if hasattr(r, "last_metadata")] == [
        ()
    ]


def test_a_gateway_and_its_wrappers_export_one_linked_trace(
    tmp_path: Path, digits_model: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    with SpanCollector() as collector:
        config = write_config(
            tmp_path,
            f"""
[tracing]
endpoint = "{collector.endpoint}"
sample_ratio = 1.0

[[models]]
name = "digits"
  [[models.versions]]
  version = "1"
  plugin = "sklearn"
  path = "{digits_model}"

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 5000
""",
        )
        with start_gateway(config, env={"OTEL_BSP_SCHEDULE_DELAY": "50"}) as gateway:
            answer = httpx.post(
                f"{gateway.url}/apps/digits/predict",
                json={"input": digits[0][9].tolist()},
                timeout=30,
            )
            assert answer.status_code == 200
            query_id = answer.json()["query_id"]
            spans = collector.wait_for(
                lambda found: (
                    {"ketch_batch_predict", PREDICT_ROUTE, "ketch.batch"} <= {s.name for s in found}
                )
            )
    [request] = [s for s in spans if s.name == PREDICT_ROUTE]
    assert request.service == "ketch-gateway"
    assert request.attributes["ketch.query_id"] == query_id
    [batch] = [s for s in spans if s.name == "ketch.batch"]
    assert batch.links == ((request.trace_id, request.span_id),)
    [server] = [s for s in spans if s.name == "inference.GRPCInferenceService/ModelInfer"]
    assert server.service == "ketch-serve"
    assert (server.trace_id, server.parent_span_id) == (batch.trace_id, batch.span_id)
    assert server.attributes["ketch.replica"] == batch.attributes["ketch.replica"]
    [predict] = [s for s in spans if s.name == "ketch_batch_predict"]
    assert predict.parent_span_id == server.span_id
    assert predict.attributes["ketch.plugin"] == "sklearn"
