"""What ``/dashboard`` shows: the gateway at a glance, as one JSON document.

Apps with their policy and what it has learnt (model weights, or each model's
plays and mean reward), models with their versions and replicas (in rotation or
not, each one's batch size target), queues and caches, request rates and
latency percentiles over the last minutes, and the last errors. Every count is
read from the instruments ``/metrics`` exposes, so the page and Prometheus agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics import MetricWrapperBase

from ketch.version import __version__

if TYPE_CHECKING:
    from ketch_gateway.correction.app import App
    from ketch_gateway.gateway import Gateway
    from ketch_gateway.serving.models import Model

__all__ = ["dashboard_snapshot", "policy_summary"]

Labels = tuple[str, ...]


def _totals(metric: MetricWrapperBase, names: Sequence[str]) -> dict[Labels, float]:
    """A counter's or gauge's values summed by the labels ``names``."""
    totals: dict[Labels, float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket", "_sum")):
                continue
            key = tuple(sample.labels[name] for name in names)
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _weights(log_weights: Sequence[float]) -> list[float]:
    top = max(log_weights)
    exps = [math.exp(w - top) for w in log_weights]
    total = sum(exps)
    return [e / total for e in exps]


def policy_summary(policy: str, state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a policy has learnt, per model: weights, or plays and mean reward."""
    if state is None:
        return None
    models: list[str] = list(state.get("models", []))
    if "log_weights" in state:
        weights = _weights([float(w) for w in state["log_weights"]])
        return {"kind": "weights", "models": dict(zip(models, weights, strict=False))}
    if "counts" in state and "sums" in state:
        plays = {}
        for model, count, total in zip(models, state["counts"], state["sums"], strict=False):
            plays[model] = {
                "plays": int(count),
                "mean_reward": float(total) / float(count) if count else None,
            }
        return {"kind": "bandit", "models": plays}
    if "weights" in state:
        return {"kind": "personalized", "models": _personalized_weights(models, state["weights"])}
    return {"kind": policy, "models": {}}


def _personalized_weights(models: list[str], weights: Any) -> dict[str, float]:
    """The shared split model's weight on each model's answer (mean over its block's diagonal)."""
    rows = (
        [list(map(float, row)) for row in weights]
        if weights and isinstance(weights[0], list)
        else None
    )
    if rows is None:
        values = [float(w) for w in weights]
        return dict(zip(models, values, strict=False))
    classes = len(rows)
    result = {}
    for index, model in enumerate(models):
        diagonal = [rows[c][index * classes + c] for c in range(classes)]
        result[model] = sum(diagonal) / classes
    return result


async def _app(app: App, gateway: Gateway, counts: Mapping[str, Any]) -> dict[str, Any]:
    summary = app.describe()
    learnt = None
    if app.corrector is not None:
        stored = await app.store.load_policy_state(app.name, "")
        learnt = policy_summary(app.config.policy, stored)
    return {
        **summary,
        "requests": counts["requests"].get(("app", app.name), 0.0),
        "errors": counts["errors"].get(("app", app.name), 0.0),
        "default_outputs": counts["defaults"].get((app.name,), 0.0),
        "learnt": learnt,
    }


def _model(model: Model, counts: Mapping[str, Any]) -> dict[str, Any]:
    versions = []
    for version in model.versions.values():
        key = (model.name, version.version)
        lookups = {
            outcome: counts["cache"].get((*key, outcome), 0.0)
            for outcome in ("exact", "approximate", "coalesced", "miss")
        }
        looked_up = sum(lookups.values())
        describe = version.predictor.describe()
        targets = describe.get("targets", {})
        versions.append(
            {
                "version": version.version,
                "current": version.version == model.current,
                "batching": describe.get("policy"),
                "objective_ms": describe.get("objective_ms"),
                "queue_depth": counts["queue"].get(key, 0.0),
                "max_batch": describe.get("max_batch"),
                "replicas": [
                    {
                        "address": replica.address,
                        "healthy": replica.healthy,
                        "managed": replica.managed,
                        "target_rows": targets.get(replica.address),
                    }
                    for replica in version.replicas.replicas
                ],
                "cache": {
                    "enabled": "cache" in describe,
                    "lookups": lookups,
                    "hit_rate": (looked_up - lookups["miss"]) / looked_up if looked_up else None,
                },
                "shed": counts["shed"].get(key, 0.0),
            }
        )
    return {
        "name": model.name,
        "version": model.current,
        "requests": counts["requests"].get(("model", model.name), 0.0),
        "versions": versions,
    }


def _counts(gateway: Gateway) -> dict[str, dict[Labels, float]]:
    metrics = gateway.metrics
    return {
        "requests": _totals(metrics.requests, ("surface", "target")),
        "errors": _totals(metrics.errors, ("surface", "target")),
        "defaults": _totals(metrics.defaults, ("app",)),
        "cache": _totals(metrics.cache_lookups, ("model", "version", "outcome")),
        "queue": _totals(metrics.queue_depth, ("model", "version")),
        "shed": _totals(metrics.shed, ("model", "version")),
    }


def _surface_totals(requests: Mapping[Labels, float]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for (surface, _), value in requests.items():
        totals[surface] = totals.get(surface, 0.0) + value
    return totals


async def dashboard_snapshot(gateway: Gateway) -> dict[str, Any]:
    """The dashboard's document, as the gateway stands now."""
    counts = _counts(gateway)
    apps: Iterable[App] = list(gateway.apps.values())
    return {
        "generated_at": time.time(),
        "gateway": {
            "version": __version__,
            "started_at": gateway.started_at,
            "tracing": gateway.tracing is not None,
            "requests": _surface_totals(counts["requests"]),
        },
        "apps": [await _app(app, gateway, counts) for app in apps],
        "models": [_model(model, counts) for model in list(gateway.models.values())],
        "history": {"interval_s": gateway.history.interval, "series": gateway.history.series()},
        "errors": gateway.recent_errors.listing(),
    }
