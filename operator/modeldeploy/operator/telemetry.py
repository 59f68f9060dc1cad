"""Every operator Prometheus collector, in one module (``modeldeploy_operator_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROLLOUTS = Counter(
    "modeldeploy_operator_rollouts",
    "Finished rollouts by outcome (Promoted, RolledBack, Aborted, Superseded).",
    ["namespace", "name", "outcome"],
)
CANARY_WEIGHT = Gauge(
    "modeldeploy_operator_canary_weight_percent",
    "The canary's current share of live traffic.",
    ["namespace", "name"],
)
ANALYSIS_VALUE = Gauge(
    "modeldeploy_operator_last_analysis_value",
    "The numbers of the last analysis (accuracy, P99, error rate, counts).",
    ["namespace", "name", "metric"],
)
TICKS = Counter(
    "modeldeploy_operator_ticks",
    "Reconcile ticks finished (status written when it changed); what tests and alerts wait on.",
    ["namespace", "name"],
)
CONFLICTS = Counter(
    "modeldeploy_operator_status_conflicts",
    "Ticks re-run because the status changed under them (409 on the status patch).",
    ["namespace", "name"],
)
TRAFFIC_DRIFT = Counter(
    "modeldeploy_operator_traffic_drift_corrections",
    "Ticks that found the served canary weight moved from the status' and set it back.",
    ["namespace", "name"],
)
RECONCILE_SECONDS = Histogram(
    "modeldeploy_operator_reconcile_duration_seconds",
    "Time one reconcile tick took.",
    ["namespace", "name"],
)


def record_tick(namespace: str, name: str, result, conflicts: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Update the collectors from one tick's result (``conflicts``: 409s before it)."""
    status = result.status
    TICKS.labels(namespace, name).inc()
    if conflicts:
        CONFLICTS.labels(namespace, name).inc(conflicts)
    RECONCILE_SECONDS.labels(namespace, name).observe(result.seconds)
    CANARY_WEIGHT.labels(namespace, name).set(status.canary.weight if status.canary else 0)
    for key, value in (status.last_analysis.get("numbers") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            ANALYSIS_VALUE.labels(namespace, name, key).set(float(value))
    before = len(result.patch.get("history") or []) if result.patch else 0
    if before and status.history:
        ROLLOUTS.labels(namespace, name, status.history[-1].outcome).inc()
