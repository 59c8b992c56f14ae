"""The rollouts' Prometheus instruments, in the gateway's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["RolloutMetrics"]


class RolloutMetrics:
    """Shadow comparisons, canary shares, feedback per arm, promotions and rollbacks."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.shadow_requests = Counter(
            "ketch_shadow_requests",
            "Requests mirrored to a shadow version, by outcome: compared (rows the shadow "
            "answered), dropped (its queue was full), failed (it did not answer).",
            ["model", "version", "outcome"],
            registry=registry,
        )
        self.shadow_agreements = Counter(
            "ketch_shadow_agreements",
            "Rows where the shadow's answer decided the same as the caller's.",
            ["model", "version"],
            registry=registry,
        )
        self.canary_share = Gauge(
            "ketch_rollout_canary_share",
            "The share of a model's traffic its rollout's canary gets now (0 when none runs).",
            ["model"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.feedback = Counter(
            "ketch_rollout_feedback",
            "Feedback joined by query id to a rollout's arm (baseline or canary), by outcome "
            "(right or wrong).",
            ["model", "arm", "outcome"],
            registry=registry,
        )
        self.decisions = Counter(
            "ketch_rollout_decisions",
            "Rollout decisions: step (a step up), promoted (to all traffic), rolled_back "
            "(reason error_rate or p99), aborted (by an admin).",
            ["model", "decision", "reason"],
            registry=registry,
        )
