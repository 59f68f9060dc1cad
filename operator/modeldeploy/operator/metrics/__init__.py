"""Metric providers: read the contract series (docs/metrics.md) into analysis observations."""

from modeldeploy.operator.metrics.base import (
    AnalysisTarget,
    InvalidMetrics,
    MetricsError,
    MetricsProvider,
    NoDataError,
    ProviderUnavailable,
)
from modeldeploy.operator.metrics.snapshot import Snapshot

__all__ = [
    "AnalysisTarget",
    "InvalidMetrics",
    "MetricsError",
    "MetricsProvider",
    "NoDataError",
    "ProviderUnavailable",
    "Snapshot",
]
