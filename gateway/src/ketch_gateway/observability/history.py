"""Request rates and latency percentiles over the last minutes, for the dashboard's charts.

Every ``interval`` seconds the gateway's request counters and latency histogram
are read (the same instruments ``/metrics`` exposes) and the difference from the
last reading becomes a point per app and per model: requests per second, errors
per second, and the 50th and 99th percentiles, interpolated within histogram
buckets as Prometheus's ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.samples import Sample

from ketch_gateway.metrics import Metrics

__all__ = ["MetricsHistory", "bucket_quantile"]

Series = tuple[str, str]
"""(surface, target)."""
CHARTED_SURFACES = frozenset({"app", "model"})


def bucket_quantile(quantile: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The quantile of cumulative ``(upper bound, count)`` buckets; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = quantile * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            width = count - lower_count
            share = (rank - lower_count) / width if width > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass
class _Reading:
    at: float
    requests: dict[Series, float] = field(default_factory=dict)
    errors: dict[Series, float] = field(default_factory=dict)
    buckets: dict[Series, dict[float, float]] = field(default_factory=dict)


def _charted(metric: MetricWrapperBase, suffix: str) -> Iterator[tuple[Series, Sample]]:
    """The samples named ``*suffix`` of the surfaces that are charted, with their series."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix):
                key = (sample.labels["surface"], sample.labels["target"])
                if key[0] in CHARTED_SURFACES:
                    yield key, sample


def _read(metrics: Metrics, at: float) -> _Reading:
    reading = _Reading(at)
    for key, sample in _charted(metrics.requests, "_total"):
        reading.requests[key] = reading.requests.get(key, 0.0) + sample.value
    for key, sample in _charted(metrics.errors, "_total"):
        reading.errors[key] = reading.errors.get(key, 0.0) + sample.value
    for key, sample in _charted(metrics.latency, "_bucket"):
        reading.buckets.setdefault(key, {})[float(sample.labels["le"])] = sample.value
    return reading


def _delta_buckets(
    now: Mapping[float, float], before: Mapping[float, float]
) -> list[tuple[float, float]]:
    return [(bound, count - before.get(bound, 0.0)) for bound, count in sorted(now.items())]


class MetricsHistory:
    """The last ``points`` intervals of ``interval`` seconds, per app and per model."""

    def __init__(self, metrics: Metrics, interval: float = 5.0, points: int = 120) -> None:
        self.metrics = metrics
        self.interval = interval
        self._last: _Reading | None = None
        self._points: dict[Series, deque[dict[str, Any]]] = {}
        self._capacity = points

    def sample(self, at: float | None = None) -> None:
        """Read the instruments now and add a point for each series since the last reading."""
        reading = _read(self.metrics, time.time() if at is None else at)
        last, self._last = self._last, reading
        if last is None:
            return
        seconds = max(reading.at - last.at, 1e-9)
        for key, count in reading.requests.items():
            buckets = _delta_buckets(reading.buckets.get(key, {}), last.buckets.get(key, {}))
            p50 = bucket_quantile(0.5, buckets)
            p99 = bucket_quantile(0.99, buckets)
            point = {
                "t": round(reading.at, 3),
                "rate": (count - last.requests.get(key, 0.0)) / seconds,
                "errors": (reading.errors.get(key, 0.0) - last.errors.get(key, 0.0)) / seconds,
                "p50_ms": None if p50 is None else p50 * 1000.0,
                "p99_ms": None if p99 is None else p99 * 1000.0,
            }
            series = self._points.get(key)
            if series is None:
                series = self._points[key] = deque(maxlen=self._capacity)
            series.append(point)

    def series(self) -> list[dict[str, Any]]:
        """Every series's points, oldest first."""
        return [
            {"surface": surface, "target": target, "points": list(points)}
            for (surface, target), points in sorted(self._points.items())
        ]

    def known(self) -> Iterable[Series]:
        """The series there are points for."""
        return self._points.keys()
