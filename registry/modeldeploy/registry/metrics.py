"""Every Prometheus collector of the registry package, in one place.

They live in the default prometheus_client registry, so whatever process mounts the
webhook receiver or runs the watcher (the operator) exports them on its /metrics.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

WEBHOOK_DELIVERIES = Counter(
    "modeldeploy_webhook_deliveries_total",
    "MLflow webhook deliveries received, by outcome "
    "(accepted, unsigned, forged, stale, replayed, malformed).",
    ["outcome"],
)

WATCHER_UP = Gauge(
    "modeldeploy_registry_up",
    "1 when the registry watcher's last poll reached MLflow, 0 while it is unavailable.",
)
