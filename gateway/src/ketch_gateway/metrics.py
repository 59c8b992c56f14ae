"""Prometheus metrics: requests, errors and latency per app and per model, requests in flight.

Under ``--workers N`` every worker runs with ``PROMETHEUS_MULTIPROC_DIR`` set (by its
parent, before prometheus-client is imported): each writes its counts to files there,
and whichever worker a scrape reaches answers the sum over all of them
(prometheus-client's multiprocess mode). Gauges say how their workers' values combine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Container
from dataclasses import dataclass
from types import TracebackType

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROCESS_VARIABLE",
    "UNKNOWN_TARGET",
    "Metrics",
    "RequestObservation",
    "RequestOutcome",
    "bounded_target",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""Set (to a folder) in each worker of ``--workers N``: prometheus-client's multiprocess mode."""
UNKNOWN_TARGET = "unknown"
"""The ``target`` label of requests to an app or model that does not exist."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
LATENCY_BUCKETS = (
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

OBJECTIVE_RATIO_BUCKETS = (
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
    1.5,
    2.0,
    4.0,
)
"""Fine steps below 1, where an autoscaler's target lies; 1 means the deadline passed."""


def bounded_target(name: str, known: Container[str]) -> str:
    """``name`` when it is ``known``, else UNKNOWN_TARGET: made-up names add no series."""
    return name if name in known else UNKNOWN_TARGET


@dataclass
class RequestOutcome:
    """Filled in by the handler: the HTTP status it answered."""

    status: int = 200


@dataclass
class _RequestInstruments:
    """The label children of one (surface, target): looked up once, as ``labels()`` is slow."""

    in_flight: Gauge
    latency: Histogram
    requests: dict[str, Counter]
    errors: dict[str, Counter]


class RequestObservation:
    """Counts and times one request: the context manager that :meth:`Metrics.observe` returns."""

    __slots__ = ("_instruments", "_metrics", "_started", "_surface", "_target", "outcome")

    def __init__(self, metrics: Metrics, surface: str, target: str) -> None:
        self._metrics = metrics
        self._surface = surface
        self._target = target
        self._instruments = metrics.instruments(surface, target)
        self._started = 0.0
        self.outcome = RequestOutcome()

    def __enter__(self) -> RequestOutcome:
        self._instruments.in_flight.inc()
        self._started = time.perf_counter()
        return self.outcome

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        instruments = self._instruments
        instruments.in_flight.dec()
        instruments.latency.observe(time.perf_counter() - self._started)
        if isinstance(error, Exception):
            self.outcome.status = getattr(error, "status", 500)
        status = self.outcome.status
        counter = instruments.requests.get(str(status))
        if counter is None:
            counter = self._metrics.status_counter(self._surface, self._target, status)
        counter.inc()
        if status >= 400:
            instruments.errors[str(status)].inc()


class Metrics:
    """The gateway's instruments, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.state_collectors = CollectorRegistry(auto_describe=True)
        """Collectors that read the gateway's state at each scrape (not counted as it goes)."""
        self._instruments: dict[tuple[str, str], _RequestInstruments] = {}
        self.requests = Counter(
            "ketch_requests",
            "Requests answered, by surface (app, model, admin), target and HTTP status.",
            ["surface", "target", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ketch_request_errors",
            "Requests answered with a 4xx or 5xx status, by surface and target.",
            ["surface", "target", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ketch_request_latency_seconds",
            "Time from a request's arrival to its answer, by surface and target.",
            ["surface", "target"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ketch_requests_in_flight",
            "Requests being handled now, by surface.",
            ["surface"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.defaults = Counter(
            "ketch_app_default_outputs",
            "App answers that were the default output (objective missed or model unavailable).",
            ["app"],
            registry=self.registry,
        )
        self.admin_auth_failures = Counter(
            "ketch_admin_auth_failures",
            "Admin requests refused for their credentials, by outcome: refused (a missing or "
            "wrong token, which counts against the client's address) or throttled (429: the "
            "address failed too often, and the token was not checked).",
            ["outcome"],
            registry=self.registry,
        )

        self.batch_size = Histogram(
            "ketch_batch_size_rows",
            "Rows per batch sent to a replica.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ketch_queue_depth",
            "Requests waiting in a model version's queue.",
            ["model", "version"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.queue_wait = Histogram(
            "ketch_queue_wait_seconds",
            "Time a request waited in the queue before its batch was sent.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait_ratio = Histogram(
            "ketch_queue_wait_objective_ratio",
            "Each request's time in the queue over its time budget there (its deadline, an "
            "app's latency objective or the model's timeout, less its arrival in the queue): "
            "how close queueing brings requests to their objective. At 1 the deadline passed "
            "in the queue. The signal to scale wrappers on.",
            ["model", "version"],
            buckets=OBJECTIVE_RATIO_BUCKETS,
            registry=self.registry,
        )
        self.replica_latency = Histogram(
            "ketch_replica_latency_seconds",
            "Time a replica took to answer a batch.",
            ["model", "version", "replica"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_target = Gauge(
            "ketch_batch_target_rows",
            "The batch size controller's current target, per replica.",
            ["model", "version", "replica"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.shed = Counter(
            "ketch_shed_requests",
            "Requests refused at the door with 503: the replicas could not answer them before "
            "their deadline (reason deadline), or the queue held max_queue requests (full).",
            ["model", "version", "reason"],
            registry=self.registry,
        )
        self.capacity = Gauge(
            "ketch_capacity_rows_per_second",
            "What a model version's healthy replicas can serve, from their measured batch "
            "times: what admission control admits against.",
            ["model", "version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.cancelled_calls = Counter(
            "ketch_cancelled_calls",
            "Calls to a replica cancelled because every request in the batch was given up.",
            ["model", "version"],
            registry=self.registry,
        )
        self.expired = Counter(
            "ketch_expired_requests",
            "Requests whose deadline passed before an answer: still queued (never sent) "
            "or in flight.",
            ["model", "version", "stage"],
            registry=self.registry,
        )

        self.cache_lookups = Counter(
            "ketch_cache_lookups",
            "Rows looked up in the prediction cache, by outcome: exact and approximate hits, "
            "coalesced with an identical row in flight, or miss.",
            ["model", "version", "outcome"],
            registry=self.registry,
        )
        self.cache_evictions = Counter(
            "ketch_cache_evictions",
            "Answers evicted from the exact cache to stay within its byte budget.",
            ["model", "version"],
            registry=self.registry,
        )
        self.cache_bytes = Gauge(
            "ketch_cache_bytes",
            "Bytes the exact cache holds.",
            ["model", "version"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )

        self._cluster_instruments()

    def _cluster_instruments(self) -> None:
        """What a gateway among others shows: DNS discovery, the shared store, admin changes."""
        self.dns_addresses = Gauge(
            "ketch_dns_addresses",
            "Addresses a version's dns:HOST:PORT address resolves to now (0 while it does "
            "not resolve: the version has no replica from it).",
            ["model", "version", "address"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.dns_failures = Counter(
            "ketch_dns_lookup_failures",
            "Lookups of a version's dns:HOST:PORT address that failed for want of an answer "
            "(the replicas it named before are kept).",
            ["model", "version", "address"],
            registry=self.registry,
        )
        self.store_up = Gauge(
            "ketch_store_up",
            "1 while the state store answers, 0 while it is unreachable (predictions go on; "
            "feedback and admin changes get 503).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.store_unavailable = Counter(
            "ketch_store_unavailable",
            "State store operations refused, or answered from memory, because the store was "
            "unreachable, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.admin_applied = Counter(
            "ketch_admin_changes_applied",
            "Admin changes this gateway applied, by how it learnt of them: local (made here), "
            "startup (replayed), notification (published by another gateway), poll (the "
            "periodic check of the change count) or resync (the re-read after a reconnection).",
            ["source"],
            registry=self.registry,
        )
        self.admin_position = Gauge(
            "ketch_admin_log_position",
            "Admin changes of the shared log this gateway has applied: the same on every "
            "gateway once they agree.",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.worker_restarts = Gauge(
            "ketch_worker_restarts",
            "Worker processes (--workers N) that exited and were restarted by their parent "
            "since the gateway started (0 for a gateway of one process).",
            registry=self.registry,
            multiprocess_mode="max",
        )

    def observe(self, surface: str, target: str) -> RequestObservation:
        """Count and time one request (use it in ``with``).

        An exception's ``status`` (an ApiError's) is the request's status; any other
        exception's is 500. ``target`` must come from a bounded set (a known app or
        model, or "unknown"), as every value is a time series of its own.
        """
        return RequestObservation(self, surface, target)

    def instruments(self, surface: str, target: str) -> _RequestInstruments:
        """The label children for requests to ``target`` on ``surface``, cached."""
        key = (surface, target)
        found = self._instruments.get(key)
        if found is None:
            found = _RequestInstruments(
                self.in_flight.labels(surface), self.latency.labels(surface, target), {}, {}
            )
            self._instruments[key] = found
        return found

    def status_counter(self, surface: str, target: str, status: int) -> Counter:
        """The request counter for one status (and the error counter, for a 4xx or 5xx), cached."""
        instruments = self.instruments(surface, target)
        label = str(status)
        counter: Counter = self.requests.labels(surface, target, label)
        instruments.requests[label] = counter
        if status >= 400:
            instruments.errors[label] = self.errors.labels(surface, target, label)
        return counter

    def add_collector(self, collector: Collector) -> None:
        """Register a collector that reads state at each scrape (the same in every worker)."""
        self.registry.register(collector)
        self.state_collectors.register(collector)

    def exposition(self) -> bytes:
        """The Prometheus text format: of every worker of ``--workers N``, summed, when there are.

        The state collectors' values come from the worker that answers the scrape: what they
        read (objectives, replica health, current versions) every worker agrees on.
        """
        folder = os.environ.get(MULTIPROCESS_VARIABLE)
        if not folder:
            return generate_latest(self.registry)
        workers = CollectorRegistry()
        MultiProcessCollector(workers, folder)  # type: ignore[no-untyped-call]
        return generate_latest(workers) + generate_latest(self.state_collectors)
