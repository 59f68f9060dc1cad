"""The metric provider contract: one small Protocol and its typed errors.

A provider reads the counters of docs/metrics.md for one rollout and returns a
``Snapshot`` of their cumulative values. The caller keeps the snapshot taken at the start
of the analysis window (``Snapshot.to_dict`` fits in the resource status) and turns the
difference into ``Observations`` with ``snapshot.since(baseline).observations()``.

Errors are typed so the decision can tell them apart, and neither is ever a pass:
``NoDataError`` (the source answered, but the series for an arm are missing) and
``ProviderUnavailable`` (the source could not be reached or answered garbage), and
``InvalidMetrics`` (NaN, infinite or negative counts: a broken exporter). All make
``assess`` inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from modeldeploy.operator.metrics.snapshot import Snapshot


class MetricsError(Exception):
    """Base of the provider errors."""


class NoDataError(MetricsError):
    """The source is up but has no series for an arm (not deployed yet, wrong labels)."""


class ProviderUnavailable(MetricsError):
    """The source could not be read (connection refused, timeout, bad response)."""


class InvalidMetrics(MetricsError):
    """The source answered with counts that cannot be counts (NaN, infinite, negative)."""


@dataclass(frozen=True)
class AnalysisTarget:
    """Which series belong to this rollout: the deployment and its two versions."""

    deployment: str
    stable_version: str
    canary_version: str


@runtime_checkable
class MetricsProvider(Protocol):
    """Where counters come from: a direct scrape of serving processes, or Prometheus."""

    def snapshot(self, target: AnalysisTarget) -> Snapshot:
        """Cumulative counters for both arms now; raises ``MetricsError`` subclasses."""
        ...

    def is_online(self) -> bool:
        """True when the source answers at all (for status and readiness, not decisions)."""
        ...
