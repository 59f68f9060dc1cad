"""Drift of the serving version against its reference, outside rollouts (per tick).

Two status keys, written by every tick next to ``metricsBaseline`` (the status schema
preserves unknown fields), so an operator restart loses nothing:

* ``driftReference``: ``{"version", "counts"}``, the promoted version's label-free counters
  over its canary window (``analysis.drift_reference.reference_of``), recorded on the tick
  that promotes it (the window state is dropped on that tick, so it is read from it there).
* ``driftWatch``: the stable arm's running window (``metrics.accumulate.WindowState``,
  restart-aware like the canary window) and the last figures. The window starts again every
  ``WATCH_WINDOW_S``; until a new one has ``min_requests``, the last figures stand.

Each tick with no canary and a reference for the stable version reads the stable arm (one
snapshot from the same provider as the analysis), and sets the
``modeldeploy_drift_*`` gauges (``telemetry``). A failed read keeps the old state: no data
is never "no drift", it is just no new figure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from modeldeploy.operator import telemetry
from modeldeploy.operator.analysis.drift_reference import reference_of, shifts
from modeldeploy.operator.api.status import Status
from modeldeploy.operator.metrics.accumulate import WindowState
from modeldeploy.operator.metrics.base import AnalysisTarget, MetricsError
from modeldeploy.operator.metrics.snapshot import add_arms
from modeldeploy.operator.observer import MetricsWindows
from modeldeploy.operator.platforms.base import Target

REFERENCE = "driftReference"
WATCH = "driftWatch"
WATCH_WINDOW_S = 3600.0


def _state(data: Mapping[str, Any] | None) -> WindowState | None:
    try:
        return WindowState.from_dict(data or {})
    except MetricsError:
        return None


def _recorded(
    after: Status, reference: Mapping[str, Any] | None, taken: Any, baseline: Any
) -> Mapping[str, Any] | None:
    """The reference to keep: a new one when the stable version has none yet and this
    tick still holds its canary window (the promoting tick)."""
    if after.stable is None or (reference or {}).get("version") == after.stable.version:
        return reference
    for source in (taken, baseline):
        state = _state(source)
        if state is not None and state.version == after.stable.version and state.canary:
            counts = reference_of(state.canary.drift)
            if counts:
                return {"version": after.stable.version, "counts": counts}
    return reference


def _stop(target: Target, watch: Mapping[str, Any]) -> None:
    """The watch ends (a rollout began, no reference): clear the gauges it had set."""
    version = (watch.get("window") or {}).get("version")
    if version is not None:
        signals = list((watch.get("figures") or {}).keys())
        telemetry.clear_drift(target.namespace, target.name, str(version), signals)


def after_tick(
    windows: MetricsWindows,
    target: Target,
    after: Status,
    old: Mapping[str, Any],
    taken: Any,
    baseline: Any,
) -> dict[str, Any]:
    """The two status keys after this tick (see the module docstring)."""
    reference = _recorded(after, old.get(REFERENCE), taken, baseline)
    out: dict[str, Any] = {REFERENCE: reference, WATCH: None}
    stable = after.stable
    watch = dict(old.get(WATCH) or {})
    watching = (
        after.canary is None
        and stable is not None
        and bool(reference)
        and (reference or {}).get("version") == stable.version
    )
    if not watching or stable is None or not reference:
        _stop(target, watch)
        return out
    state = _state(watch.get("window"))
    try:
        # Both roles: a promoted process may serve on under its canary label until the
        # platform restarts it; the version is what is watched.
        now = windows.provider_for(target).snapshot(
            AnalysisTarget(target.name, stable.version, stable.version)
        )
    except (MetricsError, ValueError, OSError):
        out[WATCH] = watch or None
        return out
    with contextlib.suppress(MetricsError, ValueError):
        if state is not None and state.version == stable.version:
            state = state.advance(now)
    if (
        state is None
        or state.version != stable.version
        or (now.taken_at - state.started_at > WATCH_WINDOW_S)
    ):
        state = WindowState.start(stable.version, 0, now)
    config = target.spec.rollout.analysis
    serving = add_arms(state.stable, state.canary)
    figures = shifts(
        reference["counts"],
        serving.drift if serving is not None else {},
        alpha=config.alpha,
        scale=config.drift.mixture_scale,
        min_requests=config.drift.min_requests,
    )
    kept = {name: shift.to_dict() for name, shift in figures.items()} or watch.get("figures")
    out[WATCH] = {"window": state.to_dict(), "figures": kept or {}}
    telemetry.record_drift(target.namespace, target.name, stable.version, kept or {})
    return out
