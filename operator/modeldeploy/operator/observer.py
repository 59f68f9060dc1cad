"""Read a rollout's observations from the metric providers (``metrics``), window by window.

A window is one (canary version, step). Its baseline ``Snapshot`` is kept in the resource
status (``status.metricsBaseline``), never in memory, so a restarted operator measures the
same window. Observations are ``snapshot_now.since(baseline)``. Any failure (no series,
provider down, no baseline yet) is "no data": the verdict is inconclusive, never a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.operator.api.status import Status
from modeldeploy.operator.metrics.base import AnalysisTarget, MetricsError, MetricsProvider
from modeldeploy.operator.metrics.snapshot import Snapshot
from modeldeploy.operator.platforms.base import Target

BASELINE = "metricsBaseline"  # the status key (the status schema preserves unknown fields)


@dataclass(frozen=True)
class Reading:
    """One read: observations (None: no data), why not, and the snapshot taken (as a dict)."""

    observations: Any = None
    problem: str = ""
    snapshot: dict[str, Any] | None = None


def window_of(status: Status) -> dict[str, Any] | None:
    canary = status.canary
    return None if canary is None else {"version": canary.version, "step": canary.step}


def _same_window(baseline: Mapping[str, Any] | None, status: Status) -> bool:
    window = window_of(status)
    if not baseline or window is None:
        return False
    return all(baseline.get(k) == v for k, v in window.items())


class MetricsWindows:
    """Observations for the current window, and the baseline to persist after a tick."""

    def __init__(self, provider_for: Callable[[Target], MetricsProvider]) -> None:
        self.provider_for = provider_for

    def _snapshot(self, target: Target, status: Status) -> Snapshot:
        assert status.stable is not None and status.canary is not None
        analysis = AnalysisTarget(target.name, status.stable.version, status.canary.version)
        return self.provider_for(target).snapshot(analysis)

    def read(self, target: Target, status: Status, baseline: Mapping[str, Any] | None) -> Reading:
        try:
            now = self._snapshot(target, status)
        except (MetricsError, ValueError) as exc:
            return Reading(problem=f"metrics unavailable: {exc}")
        if not _same_window(baseline, status):
            return Reading(problem="the metrics window starts now", snapshot=now.to_dict())
        assert baseline is not None
        try:
            base = Snapshot.from_dict(baseline.get("snapshot") or {})
            return Reading(now.since(base).observations(), snapshot=now.to_dict())
        except MetricsError as exc:
            return Reading(problem=f"no metrics for this window: {exc}", snapshot=now.to_dict())

    def baseline_after(
        self,
        target: Target,
        after: Status,
        old: Mapping[str, Any] | None,
        taken: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """The baseline to keep for ``after``'s window (None: no canary, or none readable)."""
        window = window_of(after)
        if window is None:
            return None
        if _same_window(old, after):
            return dict(old or {})
        if taken is None:
            try:
                taken = self._snapshot(target, after).to_dict()
            except (MetricsError, ValueError):
                return None
        return {**window, "snapshot": taken}


def default_provider_for(scrape_targets: Callable[[Target], list[str]]) -> Callable[..., Any]:
    """Prometheus when the spec names one, else a direct scrape of the platform's targets."""

    def provider_for(target: Target) -> MetricsProvider:
        from modeldeploy.operator.metrics.prometheus import PrometheusProvider
        from modeldeploy.operator.metrics.scrape import ScrapeProvider

        source = target.spec.metrics
        if source.provider == "prometheus":
            return PrometheusProvider(source.url)
        return ScrapeProvider(scrape_targets(target), timeout=3.0)

    return provider_for
