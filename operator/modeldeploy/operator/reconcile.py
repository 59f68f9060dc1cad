"""One reconcile tick of one ModelDeployment: read, decide (pure), act, and one status patch.

kopf handlers call ``tick`` and only translate its outcome (a status patch, or a
transient/permanent failure). Everything here is testable without kopf.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from modeldeploy.operator import registry_port
from modeldeploy.operator.api.conditions import NOT_READY, derive
from modeldeploy.operator.api.names import name_problems
from modeldeploy.operator.api.status import Status
from modeldeploy.operator.api.types import ModelDeploymentSpec, SpecError, parse_spec, spec_hash
from modeldeploy.operator.control import controls_from
from modeldeploy.operator.observer import BASELINE
from modeldeploy.operator.platforms.base import Platform, Target
from modeldeploy.operator.rollout import machine
from modeldeploy.operator.rollout.actions import Action
from modeldeploy.operator.rollout.executor import Executor

# observe(target, status, context) -> issue 5's Observations, or None when there is no data.
Observer = Callable[[Target, Status, machine.AnalysisContext], Any]


@dataclass
class Deps:
    platform: Platform
    registry_for: Callable[[ModelDeploymentSpec], Any]  # spec -> RegistryClient
    observe: Observer
    emit: Callable[[str, str, str], None]
    default_registry_uri: str = ""
    on_verdict: Callable[[Target, Any], None] = field(default=lambda target, verdict: None)
    # When set, observations come from metric windows whose baseline lives in the status
    # (``observer.MetricsWindows``) and ``observe`` is not used.
    windows: Any = None


@dataclass(frozen=True)
class TickResult:
    status: Status
    patch: dict[str, Any] | None  # None: nothing changed, skip the write
    actions: tuple[Action, ...] = ()
    invalid: str = ""  # the spec problems, when the spec is invalid
    seconds: float = 0.0


def target_of(body: Mapping[str, Any], spec: ModelDeploymentSpec, default_uri: str) -> Target:
    meta = body.get("metadata") or {}
    return Target(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", "default"),
        spec=spec,
        uid=meta.get("uid", ""),
        registry_uri=spec.model.registry_uri or default_uri,
    )


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status keys that changed (a merge patch; None removes a key)."""
    return {k: v for k, v in new.items() if old.get(k) != v}


def _analyse(
    deps: Deps, target: Target, status: Status, now: datetime, baseline: Any
) -> tuple[Any, dict[str, Any], bool, dict[str, Any] | None]:
    """(verdict or None, numbers, metrics available?, the snapshot taken if any)"""
    from modeldeploy.operator.analysis.assess import assess

    ctx = machine.analysis_due(target.spec, status, now)
    if ctx is None:
        return None, {}, status.metrics_available, None
    if not _ready(deps.platform, target):
        # Metrics of a revision that does not serve yet say nothing: hold, inconclusive.
        from modeldeploy.operator.analysis.verdict import Decision, Verdict

        held = Verdict(Decision.INCONCLUSIVE, NOT_READY)
        deps.on_verdict(target, held)
        return held, {}, status.metrics_available, None
    taken = None
    try:
        if deps.windows is not None:
            reading = deps.windows.read(target, status, baseline)
            observations, taken = reading.observations, reading.snapshot
            unavailable = reading.problem or None
        else:
            observations = deps.observe(target, status, ctx)
            unavailable = None if observations is not None else "no metrics for this step yet"
    except Exception as exc:  # any provider failure is "no data", not a crash
        observations, unavailable = None, f"metrics unavailable: {exc}"
    verdict = assess(
        target.spec.rollout.analysis,
        observations,
        at_deadline=ctx.at_deadline,
        final_step=ctx.final_step,
        unavailable=unavailable,
    )
    deps.on_verdict(target, verdict)
    numbers = dict(verdict.to_dict().get("numbers") or {})
    available = observations is not None or taken is not None
    return verdict, numbers, available, taken


def _ready(platform: Platform, target: Target) -> bool:
    """The platform serves the wanted revisions; a failed read counts as not ready."""
    try:
        return bool(platform.is_ready(target))
    except Exception:
        return False


def tick(body: Mapping[str, Any], now: datetime, deps: Deps) -> TickResult:
    started = time.monotonic()
    meta = body.get("metadata") or {}
    raw_spec = body.get("spec") or {}
    old_raw = dict(body.get("status") or {})
    before = Status.from_dict(old_raw)
    generation = int(meta.get("generation") or 0)
    digest = spec_hash(raw_spec) if isinstance(raw_spec, Mapping) else ""
    try:
        spec = parse_spec(raw_spec)
        if problems := name_problems(str(meta.get("name", ""))):
            raise SpecError(problems)
    except SpecError as exc:
        after = machine.failed(before, str(exc), generation=generation, spec_digest=digest)
        if (before.phase, before.message) != (after.phase, after.message):
            deps.emit("Warning", "InvalidSpec", f"{exc}; nothing is applied until it is fixed")
        return _finish(before, after, old_raw, now, generation, (), str(exc), started)
    target = target_of(body, spec, deps.default_registry_uri)
    client = deps.registry_for(spec)
    registry = registry_port.read_state(client, spec)
    baseline = old_raw.get(BASELINE)
    verdict, numbers, metrics_ok, taken = _analyse(deps, target, before, now, baseline)
    todo, after = machine.step(
        spec,
        before,
        registry,
        verdict,
        now,
        controls=controls_from(meta.get("annotations")),
        generation=generation,
        spec_digest=digest,
        numbers=numbers,
    )
    after = replace(after, metrics_available=metrics_ok)
    Executor(deps.platform, client, deps.emit).run(target, before, after, todo)
    extra: dict[str, Any] = {}
    if deps.windows is not None:
        extra[BASELINE] = deps.windows.baseline_after(target, after, baseline, taken)
    return _finish(before, after, old_raw, now, generation, tuple(todo), "", started, extra)


def _finish(
    before: Status,
    after: Status,
    old_raw: Mapping[str, Any],
    now: datetime,
    generation: int,
    todo: tuple[Action, ...],
    invalid: str,
    started: float,
    extra: Mapping[str, Any] | None = None,
) -> TickResult:
    after = replace(
        after, conditions=derive(after, before.conditions, machine.iso(now), generation)
    )
    patch = diff(old_raw, {**after.to_dict(), **(extra or {})})
    return TickResult(after, patch or None, todo, invalid, time.monotonic() - started)
