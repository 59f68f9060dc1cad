"""Read a rollout's observations from the metric providers, window by window.

A window is one canary version; within it, latency restarts with every traffic step unless
both arms serve the same requests at every step (``metrics/accumulate.py`` explains why, and
what is kept). Its state (running totals and the last raw snapshot per source) lives in the
resource status (``status.metricsBaseline``), never in memory, so a restarted operator
measures the same window, and a read whose status write is lost is simply read again from
the same state (nothing counted twice).
Any failure (no series, provider down, broken counts, no state yet) is "no data": the
verdict is inconclusive, never a pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.operator.api.status import Status
from modeldeploy.operator.metrics.accumulate import WindowState
from modeldeploy.operator.metrics.base import AnalysisTarget, MetricsError, MetricsProvider
from modeldeploy.operator.metrics.snapshot import Snapshot
from modeldeploy.operator.platforms.base import Target

BASELINE = "metricsBaseline"  # the status key (the status schema preserves unknown fields)


@dataclass(frozen=True)
class Reading:
    """One read: observations (None: no data), why not, and the window state after it.

    ``snapshot`` is the state to keep (a dict for the status; ``baseline_after`` takes it
    back), or None when nothing could be read.
    """

    observations: Any = None
    problem: str = ""
    snapshot: dict[str, Any] | None = None


def window_of(status: Status) -> dict[str, Any] | None:
    canary = status.canary
    return None if canary is None else {"version": canary.version, "step": canary.step}


def _state(data: Mapping[str, Any] | None) -> WindowState | None:
    """The kept state, or None when there is none (or it is unreadable: start again)."""
    try:
        return WindowState.from_dict(data or {})
    except MetricsError:
        return None


class MetricsWindows:
    """Observations for the current window, and the state to persist after a tick."""

    def __init__(
        self,
        provider_for: Callable[[Target], MetricsProvider],
        latency_spans_steps: bool = False,
    ) -> None:
        """``latency_spans_steps``: the platform's arms serve the same requests whatever the
        weight (local mode's score-both router), so latency is one experiment per canary
        version, as accuracy is, instead of one per traffic step."""
        self.provider_for = provider_for
        self.latency_spans_steps = latency_spans_steps
        # The last state ``read`` encoded, with its dict: ``baseline_after`` gets that very
        # dict back in the same tick and need not decode and encode it again. Only an
        # identity match is used, so a stale or foreign entry just means decoding.
        self._encoded: tuple[dict[str, Any], WindowState] | None = None

    def _encode(self, state: WindowState) -> dict[str, Any]:
        data = state.to_dict()
        self._encoded = (data, state)
        return data

    def _decoded(self, data: Mapping[str, Any] | None) -> WindowState | None:
        known = self._encoded
        if known is not None and data is known[0]:
            return known[1]
        return _state(data)

    def _snapshot(self, target: Target, status: Status) -> Snapshot:
        assert status.stable is not None and status.canary is not None
        analysis = AnalysisTarget(target.name, status.stable.version, status.canary.version)
        return self.provider_for(target).snapshot(analysis)

    def read(self, target: Target, status: Status, baseline: Mapping[str, Any] | None) -> Reading:
        try:
            now = self._snapshot(target, status)
        except (MetricsError, ValueError) as exc:
            return Reading(problem=f"metrics unavailable: {exc}")
        assert status.canary is not None
        version, step = status.canary.version, status.canary.step
        state = _state(baseline)
        if state is None or state.version != version:
            fresh = WindowState.start(version, step, now)
            return Reading(problem="the metrics window starts now", snapshot=fresh.to_dict())
        try:
            state = state.next_step(step, self.latency_spans_steps).advance(now)
        except MetricsError as exc:
            return Reading(problem=f"no metrics for this window: {exc}")
        try:
            return Reading(state.observations(), snapshot=self._encode(state))
        except MetricsError as exc:
            return Reading(
                problem=f"no metrics for this window: {exc}", snapshot=self._encode(state)
            )

    def baseline_after(
        self,
        target: Target,
        after: Status,
        old: Mapping[str, Any] | None,
        taken: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """The state to keep for ``after``'s window (None: no canary, or none readable).

        ``taken`` is what this tick's ``read`` returned (None when it did not read).
        """
        if after.canary is None:
            return None
        version, step = after.canary.version, after.canary.step
        state = self._decoded(taken) or _state(old)
        if state is not None and state.version == version:
            if taken is None and state.step != step:
                # The step moved on a tick that did not read: end the old step's latency now.
                with contextlib.suppress(MetricsError, ValueError):
                    state = state.advance(self._snapshot(target, after))
            following = state.next_step(step, self.latency_spans_steps)
            if taken is not None and following is self._decoded(taken):
                return taken  # unchanged: the dict ``read`` just made is this state
            return following.to_dict()
        # A new canary version: its window starts with a snapshot of its own series.
        try:
            return WindowState.start(version, step, self._snapshot(target, after)).to_dict()
        except (MetricsError, ValueError):
            return None


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
