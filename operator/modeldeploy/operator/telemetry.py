"""Every operator Prometheus collector, in one module (``modeldeploy_operator_*``)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

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
DRIFT_LABELS = ["namespace", "name", "model_version", "signal"]
DRIFT_SHIFT = Gauge(
    "modeldeploy_drift_shift_ratio",
    "Serving version against its reference (recorded at promotion): the largest share"
    " shift of a signal (prediction mix, confidence, input tokens; truncation: rate rise), 0-1.",
    DRIFT_LABELS,
)
DRIFT_SHIFT_LOWER = Gauge(
    "modeldeploy_drift_shift_lower_bound_ratio",
    "Always-valid lower bound (spec confidence) of modeldeploy_drift_shift_ratio: above a"
    " limit, the shift is real, not noise.",
    DRIFT_LABELS,
)
DRIFT_WINDOW_REQUESTS = Gauge(
    "modeldeploy_drift_window_requests",
    "Requests of the serving version in the current drift window (the figures' sample).",
    ["namespace", "name", "model_version"],
)
RECONCILE_SECONDS = Histogram(
    "modeldeploy_operator_reconcile_duration_seconds",
    "Time one reconcile tick took.",
    ["namespace", "name"],
)


def record_drift(
    namespace: str, name: str, version: str, figures: dict[str, dict[str, float]]
) -> None:
    """Set the drift gauges of the serving version from ``drift_watch``'s figures."""
    requests = 0.0
    for signal, figure in figures.items():
        DRIFT_SHIFT.labels(namespace, name, version, signal).set(float(figure["estimate"]))
        DRIFT_SHIFT_LOWER.labels(namespace, name, version, signal).set(float(figure["lower"]))
        requests = max(requests, float(figure.get("requests", 0)))
    DRIFT_WINDOW_REQUESTS.labels(namespace, name, version).set(requests)


def clear_drift(namespace: str, name: str, version: str, signals: list[str]) -> None:
    """Drop a version's drift gauges (a rollout began, or it is no longer served): a stale
    figure must not keep an alert firing."""
    for signal in signals:
        for gauge in (DRIFT_SHIFT, DRIFT_SHIFT_LOWER):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name, version, signal)
    with contextlib.suppress(KeyError):
        DRIFT_WINDOW_REQUESTS.remove(namespace, name, version)


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


# -- tick lag: is the operator keeping up? -------------------------------------------------
# Unlabelled on purpose: a thousand ModelDeployments must not mean a thousand histograms.
TICK_LAG = Histogram(
    "modeldeploy_operator_tick_lag_seconds",
    "Delay between when a tick was due (its sleep ended, or it was woken) and when it "
    "started running; grows when the operator cannot keep up with its ModelDeployments.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0),
)
LATE_TICKS = Counter(
    "modeldeploy_operator_late_ticks",
    "Ticks that started more than twice their planned interval after the previous one.",
)
LATE_LOG_SECONDS = 60.0  # at most one "ticks are late" log line per minute per process

log = logging.getLogger(__name__)


class _LateTicks:
    """Counts late ticks and says so in the log, at most once per ``LATE_LOG_SECONDS``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count, self.worst, self.interval, self.logged = 0, 0.0, 0.0, float("-inf")

    def late(self, period: float, interval: float, now: float) -> None:
        LATE_TICKS.inc()
        with self.lock:
            self.count += 1
            if period > self.worst:
                self.worst, self.interval = period, interval
            if now - self.logged < LATE_LOG_SECONDS:
                return
            count, worst, planned = self.count, self.worst, self.interval
            self.count, self.worst, self.logged = 0, 0.0, now
        log.warning(
            "%d tick(s) started late (worst: %.1f s after the previous one, planned %.1f s): "
            "the operator is not keeping up with its ModelDeployments (docs/runbook.md)",
            count,
            worst,
            planned,
        )


LATE = _LateTicks()


@dataclass
class TickClock:
    """When one ModelDeployment's ticks were due and when they started (one per daemon)."""

    last_start: float | None = None

    def started(self, due: float, interval: float, now: float | None = None) -> float:
        """Record a tick starting; ``interval``: the sleep planned before it. Returns the lag."""
        now = time.monotonic() if now is None else now
        lag = max(0.0, now - due)
        TICK_LAG.observe(lag)
        if self.last_start is not None and interval > 0:
            period = now - self.last_start
            if period > 2 * interval:
                LATE.late(period, interval, now)
        self.last_start = now
        return lag


# -- per-ModelDeployment state for alerts: conditions, SLO targets, prices ----------------
# Built at scrape time from the last written tick of each ModelDeployment, so a condition
# that changed (or a ModelDeployment that is gone) leaves no stale series behind.

CONDITION = "modeldeploy_condition"
CONDITION_SINCE = "modeldeploy_condition_last_transition_timestamp_seconds"
SLO_OBJECTIVE = "modeldeploy_slo_objective_ratio"
SLO_LATENCY_BUCKET = "modeldeploy_slo_latency_bucket_info"
COST_CPU_CORE_HOUR = "modeldeploy_cost_cpu_core_hour"
COST_GPU_HOUR = "modeldeploy_cost_gpu_hour"
LATENCY_SLO_QUANTILE = 0.99  # spec.slo.p99LatencySeconds: 99% of requests under it


@dataclass(frozen=True)
class ExportedState:
    """What one ModelDeployment's last written tick exports (see :func:`record_state`)."""

    conditions: tuple[tuple[str, str, str, float], ...] = ()  # type, status, reason, since
    availability: float | None = None
    latency_le: str | None = None  # the latency bucket's ``le`` text the SLO is measured at
    cpu_core_hour: float | None = None
    gpu_hour: float | None = None


def latency_slo_bucket(threshold_seconds: float) -> str:
    """The ``le`` label of the largest contract latency edge at or below the threshold,
    spelled as ``prometheus_client`` exports it, so a rule can join on it exactly. Never
    above the threshold: the measured SLO is at most one bucket (5%) stricter than written."""
    from prometheus_client.utils import floatToGoString

    from modeldeploy.serving.contract.latency import latency_bucket_edges

    edges = [e for e in latency_bucket_edges() if e <= threshold_seconds]
    return floatToGoString(edges[-1] if edges else latency_bucket_edges()[0])


def _since(timestamp: object) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("nan")


def exported_state(spec: object, conditions: object) -> ExportedState:
    """The exported state from a raw spec mapping and the status conditions (bad input:
    what can be read of it; an invalid spec exports its conditions and no targets)."""
    from modeldeploy.operator.api.spec import ModelDeploymentSpec

    rows = tuple(
        (
            str(c.get("type")),
            str(c.get("status")),
            str(c.get("reason") or ""),
            _since(c.get("lastTransitionTime")),
        )
        for c in (conditions if isinstance(conditions, list | tuple) else ())
        if isinstance(c, dict) and c.get("type")
    )
    try:
        parsed = ModelDeploymentSpec.model_validate(spec)
    except Exception:  # invalid spec: InvalidSpec is already reported; export no targets
        return ExportedState(rows)
    slo, cost = parsed.slo, parsed.cost
    threshold = slo.p99_latency_seconds
    return ExportedState(
        rows,
        slo.availability,
        None if threshold is None else latency_slo_bucket(threshold),
        cost.cpu_core_hour,
        cost.gpu_hour,
    )


class _StateCollector:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: dict[tuple[str, str], ExportedState] = {}

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.core import GaugeMetricFamily

        with self.lock:
            states = sorted(self.states.items())
        condition = GaugeMetricFamily(
            CONDITION,
            "1 for each ModelDeployment condition's current status and reason.",
            labels=["namespace", "name", "type", "status", "reason"],
        )
        since = GaugeMetricFamily(
            CONDITION_SINCE,
            "When each ModelDeployment condition last changed status (Unix seconds).",
            labels=["namespace", "name", "type"],
        )
        objective = GaugeMetricFamily(
            SLO_OBJECTIVE,
            "spec.slo targets: availability, and latency (the share under the P99 bound).",
            labels=["namespace", "deployment", "slo"],
        )
        bucket = GaugeMetricFamily(
            SLO_LATENCY_BUCKET,
            "1 on the latency bucket (le) that spec.slo.p99LatencySeconds is measured at.",
            labels=["namespace", "deployment", "le"],
        )
        cpu = GaugeMetricFamily(
            COST_CPU_CORE_HOUR, "spec.cost.cpuCoreHour.", labels=["namespace", "deployment"]
        )
        gpu = GaugeMetricFamily(
            COST_GPU_HOUR, "spec.cost.gpuHour.", labels=["namespace", "deployment"]
        )
        for (namespace, name), state in states:
            for ctype, status, reason, at in state.conditions:
                condition.add_metric([namespace, name, ctype, status, reason], 1.0)
                since.add_metric([namespace, name, ctype], at)
            if state.availability is not None:
                objective.add_metric([namespace, name, "availability"], state.availability)
            if state.latency_le is not None:
                objective.add_metric([namespace, name, "latency"], LATENCY_SLO_QUANTILE)
                bucket.add_metric([namespace, name, state.latency_le], 1.0)
            if state.cpu_core_hour is not None:
                cpu.add_metric([namespace, name], state.cpu_core_hour)
            if state.gpu_hour is not None:
                gpu.add_metric([namespace, name], state.gpu_hour)
        return [condition, since, objective, bucket, cpu, gpu]


STATES = _StateCollector()
REGISTRY.register(STATES)  # type: ignore[arg-type]


def record_state(namespace: str, name: str, spec: object, conditions: object) -> None:
    """Export a ModelDeployment's conditions, SLO targets and prices after a written tick."""
    state = exported_state(spec, conditions)
    with STATES.lock:
        STATES.states[(namespace, name)] = state


def forget_state(namespace: str, name: str) -> None:
    """The ModelDeployment is gone (or no longer ours): its series go with it."""
    with STATES.lock:
        STATES.states.pop((namespace, name), None)
