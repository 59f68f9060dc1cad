"""The router's own collectors (``modeldeploy_router_*``), named by the contract.

``modeldeploy_paired_outcomes_total``, part of the serving/analysis contract
(docs/metrics.md), is defined with the other serving collectors in
:mod:`modeldeploy.serving.metrics` and shared with the prober. Each router (and each
prober) gets its own registry, so several can live in one test process and each
``/metrics`` shows only its own series. The split gauges are ratios (0-1), as
Prometheus names a share; the router's HTTP API keeps percent.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

from modeldeploy.serving.contract import names as n
from modeldeploy.serving.metrics import paired_outcomes_counter

UPSTREAM_ERROR_REASONS = n.ROUTER_UPSTREAM_ERROR_REASONS
FEEDBACK_OUTCOMES = n.ROUTER_FEEDBACK_OUTCOMES


class RouterMetrics:
    """Everything ``/metrics`` on the router shows."""

    def __init__(self, deployment: str, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            # Its own registry carries process_start_time_seconds, so the analysis can tell
            # a restarted router (paired-outcome counters from zero) from a quiet one.
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
        self.registry = registry
        self.deployment = deployment
        r = self.registry
        self.requests = Counter(
            n.ROUTER_REQUESTS,
            "Requests sent upstream, by arm and purpose (primary, paired, mirror, label).",
            (n.DEPLOYMENT, n.ROLE, n.PURPOSE, n.PROTOCOL),
            registry=r,
        )
        self.upstream_errors = Counter(
            n.ROUTER_UPSTREAM_ERRORS,
            "Upstream calls that failed: unreachable, timed out, or answered 5xx.",
            (n.DEPLOYMENT, n.ROLE, n.REASON),
            registry=r,
        )
        self.shadow_comparisons = Counter(
            n.ROUTER_SHADOW_COMPARISONS,
            "Items scored by stable and shadow, by whether the predicted classes agree.",
            (n.DEPLOYMENT, n.STABLE_VERSION, n.SHADOW_VERSION, n.AGREE),
            registry=r,
        )
        self.feedback = Counter(
            n.ROUTER_FEEDBACK,
            "Feedback posted to the router, by what happened to it.",
            (n.DEPLOYMENT, n.OUTCOME),
            registry=r,
        )
        self.canary_weight = Gauge(
            n.ROUTER_CANARY_WEIGHT,
            "Share (0-1) of primary traffic routed to the canary arm.",
            (n.DEPLOYMENT,),
            registry=r,
        )
        self.paired_share = Gauge(
            n.ROUTER_PAIRED_SHARE,
            "Share (0-1) of canary traffic that stable also scores.",
            (n.DEPLOYMENT,),
            registry=r,
        )
        self.paired_outcomes = paired_outcomes_counter(r)
        self.paired_predictions = Counter(
            n.PAIRED_PREDICTIONS,
            "Inputs scored by stable and canary (paired share), by each arm's predicted class.",
            n.PAIRED_PREDICTION_LABELS,
            registry=r,
        )
        for outcome in FEEDBACK_OUTCOMES:
            self.feedback.labels(deployment, outcome)

    def set_split(self, canary_percent: float, paired_share_percent: float) -> None:
        self.canary_weight.labels(self.deployment).set(canary_percent / 100.0)
        self.paired_share.labels(self.deployment).set(paired_share_percent / 100.0)

    def routed(self, role: str, purpose: str, protocol: str) -> None:
        self.requests.labels(self.deployment, role, purpose, protocol).inc()

    def upstream_error(self, role: str, reason: str) -> None:
        self.upstream_errors.labels(self.deployment, role, reason).inc()

    def shadow_compared(self, stable_version: str, shadow_version: str, agree: bool) -> None:
        flag = "true" if agree else "false"
        self.shadow_comparisons.labels(self.deployment, stable_version, shadow_version, flag).inc()

    def paired_prediction(
        self, stable_version: str, canary_version: str, stable_label: str, canary_label: str
    ) -> None:
        """One unlabelled input both arms scored (the drift checks' paired evidence)."""
        self.paired_predictions.labels(
            self.deployment, stable_version, canary_version, stable_label, canary_label
        ).inc()

    def feedback_outcome(self, outcome: str) -> None:
        self.feedback.labels(self.deployment, outcome).inc()

    def paired(self, stable_version: str, canary_version: str, source: str, outcome: str) -> None:
        if outcome not in n.PAIRED_OUTCOMES:
            raise ValueError(f"unknown paired outcome {outcome!r}")
        self.paired_outcomes.labels(
            self.deployment, stable_version, canary_version, source, outcome
        ).inc()
