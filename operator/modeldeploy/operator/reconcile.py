"""One reconcile tick of one ModelDeployment: read, decide (pure), act, and one status patch.

kopf handlers and local mode (``local.runner``) both call ``tick`` with their ``Deps``;
the only difference between them is which ``Platform`` and which registry they pass.
Per tick: parse the spec, read the registry, ask the platform how each arm is
(``Platform.health``: a dead canary is rolled back on this tick, not at its deadline),
read the metrics window (``observer.MetricsWindows``, baseline kept in
``status.metricsBaseline``), ``assess`` the checks, let the pure state machine decide,
carry out its actions (``executor``), and return one status patch. A canary that fails to
start is not a failed tick: its error goes to the machine (``canary_start_failed``), which
retries with backoff or rejects it, and the status records the attempt. Everything here
is testable without kopf.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from modeldeploy.operator import drift_watch, registry_port, triton_view
from modeldeploy.operator.analysis import cost
from modeldeploy.operator.analysis.assess import assess
from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.analysis.planning import plan
from modeldeploy.operator.analysis.verdict import Outcome, Verdict
from modeldeploy.operator.api.conditions import NOT_READY, derive
from modeldeploy.operator.api.names import name_problems
from modeldeploy.operator.api.status import ArmHealth, Status
from modeldeploy.operator.api.types import ModelDeploymentSpec, SpecError, parse_spec, spec_hash
from modeldeploy.operator.control import controls_from
from modeldeploy.operator.executor import ExecutionFailed, Executor
from modeldeploy.operator.observer import BASELINE, MetricsWindows
from modeldeploy.operator.platforms.base import LabelPathReporter, Platform, Target
from modeldeploy.operator.rollout import machine
from modeldeploy.operator.rollout.actions import Action, EmitEvent, SetCanary
from modeldeploy.registry.base import RegistryClient

log = logging.getLogger("modeldeploy.operator.reconcile")


def _ignore_verdict(target: Target, verdict: Verdict) -> None:
    """The default ``on_verdict``: nobody listens."""


@dataclass
class Deps:
    """What a tick talks to. kopf and local mode differ only in the values."""

    platform: Platform
    registry_for: Callable[[ModelDeploymentSpec], RegistryClient]
    windows: MetricsWindows
    emit: Callable[[str, str, str], None]  # (Normal|Warning, reason, message)
    default_registry_uri: str = ""
    on_verdict: Callable[[Target, Verdict], None] = field(default=_ignore_verdict)
    default_cpu_core_hour: float | None = None  # the chart's price, for specs without one
    default_gpu_hour: float | None = None  # likewise for spec.cost.gpuHour


@dataclass(frozen=True)
class Analysis:
    """What this tick's analysis produced (all empty when none was due)."""

    verdict: Verdict | None = None
    observations: Observations | None = None
    numbers: Mapping[str, Any] = field(default_factory=dict)
    metrics_available: bool | None = None  # None: not looked at, keep the old value
    snapshot: dict[str, Any] | None = None  # the snapshot taken, to seed a new window
    expected_seconds: float | None = None


@dataclass(frozen=True)
class TickResult:
    status: Status
    patch: dict[str, Any] | None  # None: nothing changed, skip the write
    actions: tuple[Action, ...] = ()
    invalid: str = ""  # the spec problems, when the spec is invalid
    seconds: float = 0.0
    analysis: Analysis = field(default_factory=Analysis)


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


def _window_seconds(taken: Mapping[str, Any] | None, fallback: float) -> float:
    """How long the window behind ``taken`` has counted, from its own clock, else ``fallback``.

    The window state (``metrics/accumulate.py``) records when it started (``since``) and
    when it last read (``last.t``); the rates the planning estimate uses are counts over that.
    """
    try:
        start = float((taken or {})["since"])
        end = float((taken or {})["last"]["t"])
    except (KeyError, TypeError, ValueError):
        return fallback
    return end - start if end > start else fallback


def _analyse(deps: Deps, target: Target, status: Status, now: datetime, baseline: Any) -> Analysis:
    ctx = machine.analysis_due(target.spec, status, now)
    if ctx is None:
        return Analysis()
    if not _ready(deps.platform, target):
        # Metrics of a revision that does not serve yet say nothing: pending.
        held = Verdict(Outcome.PENDING, _not_ready_reason(deps.platform, target))
        deps.on_verdict(target, held)
        return Analysis(held)
    try:
        reading = deps.windows.read(target, status, baseline)
        observations, taken = reading.observations, reading.snapshot
        unavailable = reading.problem or None
    except Exception as exc:  # any provider failure is "no data", not a crash
        observations, taken, unavailable = None, None, f"metrics unavailable: {exc}"
    config = target.spec.rollout.analysis
    price, gpu_price = target.spec.cost.cpu_core_hour, target.spec.cost.gpu_hour
    verdict = cost.with_cost(
        assess(config, observations, unavailable),
        observations,
        deps.default_cpu_core_hour if price is None else price,
        deps.default_gpu_hour if gpu_price is None else gpu_price,
        gpus_requested=target.spec.resources.gpu > 0,
    )
    deps.on_verdict(target, verdict)
    expected = None
    if observations is not None:
        elapsed = (now - ctx.step_start).total_seconds()
        seconds = _window_seconds(taken, elapsed)
        expected = plan(config, observations, seconds).seconds
    return Analysis(
        verdict,
        observations,
        dict(verdict.to_dict().get("numbers") or {}),
        observations is not None or taken is not None,
        taken,
        expected,
    )


def _health(platform: Platform, target: Target) -> dict[str, ArmHealth] | None:
    """Each arm's health; None when the platform could not say (nothing is concluded)."""
    try:
        return dict(platform.health(target))
    except Exception:
        return None


def _execute(
    deps: Deps,
    client: RegistryClient,
    target: Target,
    before: Status,
    after: Status,
    todo: list[Action],
    now: datetime,
) -> tuple[list[Action], Status]:
    """Run the actions; a failed start of the canary becomes a status change, not an error.

    Only the canary's own failure counts (``PlatformError.arm == "canary"``); any other
    failure raises ``ExecutionFailed`` as before (the tick is retried whole).
    """
    executor = Executor(deps.platform, client, deps.emit)
    done: list[Action] = []
    for index, action in enumerate(todo):
        try:
            executor.run(target, before, after, [action], reassert=False)
        except ExecutionFailed as exc:
            if not _is_canary_start(action, after) or getattr(exc.__cause__, "arm", "") != "canary":
                raise
            error = str(exc).removeprefix("SetCanary failed: ")
            more, after = machine.canary_start_failed(target.spec, after, error, now)
            rest = [x for x in todo[index + 1 :] if isinstance(x, EmitEvent)]
            executor.run(target, before, after, [*rest, *more])
            return [*done, action, *rest, *more], after
        done.append(action)
        if _is_canary_start(action, after):
            after = machine.canary_started(after)
            _warn_of_label_path(deps, target)
    executor.run(target, before, after, [])  # once per tick, after every action: drift
    return done, after


def _warn_of_label_path(deps: Deps, target: Target) -> None:
    """A Warning Event (and a log line) when labels may not reach the arm that served them:
    the rollout would then wait for labels that never come, and the people who run it
    should hear why before the step deadline, not after."""
    if not isinstance(deps.platform, LabelPathReporter):
        return
    try:
        problem = deps.platform.label_path_problem(target)
    except Exception:  # a hint, never a reason to fail the tick
        return
    if problem:
        log.warning("%s/%s: %s", target.namespace, target.name, problem)
        deps.emit("Warning", "LabelsMayNotArrive", problem)


def _is_canary_start(action: Action, after: Status) -> bool:
    return (
        isinstance(action, SetCanary)
        and after.phase == "Progressing"
        and after.canary is not None
        and action.ref.version == after.canary.version
    )


def _not_ready_reason(platform: Platform, target: Target) -> str:
    """Why the analysis waits: a serving component other than the arms that says why
    (local mode's joiner: no label is counted while it is down), else the canary."""
    for role, arm in (_health(platform, target) or {}).items():
        if role not in ("stable", "canary") and not arm.ready and arm.reason:
            return arm.reason
    return NOT_READY


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
    if problem := triton_view.legacy_problem(client, spec, registry):
        after = machine.failed(before, problem, generation=generation, spec_digest=digest)
        if (before.phase, before.message) != (after.phase, after.message):
            deps.emit("Warning", "InvalidSpec", f"{problem}; nothing is applied until it is fixed")
        return _finish(before, after, old_raw, now, generation, (), problem, started)
    baseline = old_raw.get(BASELINE)
    health = _health(deps.platform, target) if before.stable is not None else None
    analysis = _analyse(deps, target, before, now, baseline)
    todo, after = machine.step(
        spec,
        before,
        registry,
        analysis.verdict,
        now,
        controls=controls_from(meta.get("annotations")),
        generation=generation,
        spec_digest=digest,
        numbers=analysis.numbers,
        expected_seconds=_finite(analysis.expected_seconds),
        health=health,
    )
    if analysis.metrics_available is not None:
        after = replace(after, metrics_available=analysis.metrics_available)
    elif after.metrics_available is None:  # not contacted while the spec was invalid
        after = replace(after, metrics_available=True)
    todo, after = _execute(deps, client, target, before, after, todo, now)
    extra = {BASELINE: deps.windows.baseline_after(target, after, baseline, analysis.snapshot)}
    extra.update(
        drift_watch.after_tick(deps.windows, target, after, old_raw, analysis.snapshot, baseline)
    )
    return _finish(
        before, after, old_raw, now, generation, tuple(todo), "", started, extra, analysis
    )


def _finite(seconds: float | None) -> float | None:
    """A finite estimate as is; "never at this rate" as a very large number of seconds."""
    if seconds is None:
        return None
    return min(seconds, 10.0**9)


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
    analysis: Analysis | None = None,
) -> TickResult:
    after = replace(
        after, conditions=derive(after, before.conditions, machine.iso(now), generation)
    )
    patch = diff(old_raw, {**after.to_dict(), **(extra or {})})
    return TickResult(
        after, patch or None, todo, invalid, time.monotonic() - started, analysis or Analysis()
    )
