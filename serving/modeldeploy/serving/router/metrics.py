"""The router's own collectors (``modeldeploy_router_*``).

``modeldeploy_paired_outcomes_total``, part of the serving/analysis contract
(docs/metrics.md), is defined with the other serving collectors in
:mod:`modeldeploy.serving.metrics` and shared with the prober. Each router (and each
prober) gets its own registry, so several can live in one test process and each
``/metrics`` shows only its own series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from modeldeploy.serving.metrics import paired_outcomes_counter
from modeldeploy.serving.router.pairing import PAIRED_OUTCOMES

UPSTREAM_ERROR_REASONS = ("connect", "timeout", "status_5xx")
FEEDBACK_OUTCOMES = ("forwarded", "unknown_id", "duplicate", "bad_input", "upstream_error")


class RouterMetrics:
    """Everything ``/metrics`` on the router shows."""

    def __init__(self, deployment: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.deployment = deployment
        r = self.registry
        self.requests = Counter(
            "modeldeploy_router_requests",
            "Requests sent upstream, by arm and purpose (primary, paired, mirror).",
            ("deployment", "role", "purpose", "protocol"),
            registry=r,
        )
        self.upstream_errors = Counter(
            "modeldeploy_router_upstream_errors",
            "Upstream calls that failed: unreachable, timed out, or answered 5xx.",
            ("deployment", "role", "reason"),
            registry=r,
        )
        self.shadow_comparisons = Counter(
            "modeldeploy_router_shadow_comparisons",
            "Items scored by stable and shadow, by whether the predicted classes agree.",
            ("deployment", "stable_version", "shadow_version", "agree"),
            registry=r,
        )
        self.feedback = Counter(
            "modeldeploy_router_feedback",
            "Feedback posted to the router, by what happened to it.",
            ("deployment", "outcome"),
            registry=r,
        )
        self.canary_weight = Gauge(
            "modeldeploy_router_canary_weight_percent",
            "Percent of primary traffic routed to the canary arm.",
            ("deployment",),
            registry=r,
        )
        self.paired_share = Gauge(
            "modeldeploy_router_paired_share_percent",
            "Percent of canary traffic that stable also scores.",
            ("deployment",),
            registry=r,
        )
        self.paired_outcomes = paired_outcomes_counter(r)
        for outcome in FEEDBACK_OUTCOMES:
            self.feedback.labels(deployment, outcome)

    def set_split(self, canary: float, paired_share: float) -> None:
        self.canary_weight.labels(self.deployment).set(canary)
        self.paired_share.labels(self.deployment).set(paired_share)

    def routed(self, role: str, purpose: str, protocol: str) -> None:
        self.requests.labels(self.deployment, role, purpose, protocol).inc()

    def upstream_error(self, role: str, reason: str) -> None:
        self.upstream_errors.labels(self.deployment, role, reason).inc()

    def shadow_compared(self, stable_version: str, shadow_version: str, agree: bool) -> None:
        flag = "true" if agree else "false"
        self.shadow_comparisons.labels(self.deployment, stable_version, shadow_version, flag).inc()

    def feedback_outcome(self, outcome: str) -> None:
        self.feedback.labels(self.deployment, outcome).inc()

    def paired(self, stable_version: str, canary_version: str, source: str, outcome: str) -> None:
        assert outcome in PAIRED_OUTCOMES
        self.paired_outcomes.labels(
            self.deployment, stable_version, canary_version, source, outcome
        ).inc()
