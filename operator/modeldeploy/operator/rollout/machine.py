"""The rollout state machine: (spec, status, registry, verdict, now) -> (actions, new status).

Pure: no I/O and no clock, so every transition is a table test. The machine alone owns
progression: the analysis says whether the checks FAIL, PASS or are still PENDING, and
the machine decides what that means for the rollout:

- FAIL -> roll back; PASS -> advance (promote after the last step);
- PENDING before the step's deadline -> keep collecting at the same weight;
- PENDING at the step's deadline (counted from ``canary.stepStartTime``) ->
  ``onInconclusive``: roll back, or hold at the current weight and say so. Never promote
  without proof; a held step keeps being analysed and advances if proof arrives.

Phases follow Flagger:

    Initializing -> Stable -> Progressing -> Promoting -> Stable
                                          -> RollingBack -> RolledBack -> Progressing ...

A decision is written to the status (Promoting or RollingBack) one tick *before* it is
carried out. A crash between the two resumes in that phase, which can only finish what
it started: a candidate is never promoted twice, nor promoted and rolled back.

Faults of the serving arms (the platform's ``health``, asked every tick) are decisions too:

- a canary whose process is gone rolls back at once with the platform's reason ("canary
  process exited (code 1): ..."), and its traffic goes to stable in the same tick;
- a canary not ready for ``NOT_READY_BOUND_SECONDS`` (or the step's deadline, if
  shorter) rolls back with the readiness reason; ``canary.notReadySince`` counts it;
- a canary that cannot start is retried with backoff (``canary_start_failed``, counted
  in ``canary.startAttempts`` so a restarted operator keeps counting) and rolled back
  and rejected after ``MAX_START_ATTEMPTS``, with the last error as the reason;
- a stable arm that is gone is started again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from modeldeploy.operator.api.status import (
    ArmHealth,
    CanaryState,
    HistoryEntry,
    Status,
    VersionRef,
)
from modeldeploy.operator.api.types import ModelDeploymentSpec
from modeldeploy.operator.rollout import policy, schedule
from modeldeploy.operator.rollout.actions import (
    Action,
    EmitEvent,
    EnsureStable,
    PromoteInRegistry,
    PromoteOnPlatform,
    RejectInRegistry,
    RemoveCanary,
    SetCanary,
    SetTraffic,
)

NOT_READY_BOUND_SECONDS = 300.0
MAX_START_ATTEMPTS = 3
START_BACKOFF_SECONDS = 10.0  # doubled after each failed attempt


@dataclass(frozen=True)
class RegistryState:
    """Where the two aliases point right now (``available`` False: the read failed)."""

    available: bool = True
    stable: VersionRef | None = None
    candidate: VersionRef | None = None


@dataclass(frozen=True)
class Controls:
    """Manual control, from annotations or spec: promote/abort name the canary version."""

    paused: bool = False
    promote: str = ""
    abort: str = ""


class VerdictLike(Protocol):
    """What the machine reads from an analysis verdict (``analysis.verdict.Verdict``)."""

    @property
    def outcome(self) -> str: ...  # pass | fail | pending

    @property
    def reason(self) -> str: ...


class Decision(StrEnum):
    """What the machine made of one analysis (recorded in ``lastAnalysis.decision``)."""

    CONTINUE = "continue"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    HOLD = "hold"


@dataclass(frozen=True)
class AnalysisContext:
    """The step being analysed, and when its deadline falls."""

    step: int
    weight: int
    step_start: datetime
    deadline: datetime


def step_deadline(spec: ModelDeploymentSpec, canary: CanaryState, now: datetime) -> datetime:
    """When the current step's deadline falls: its start plus the per-step deadline."""
    start = parse_time(canary.step_start_time) or parse_time(canary.start_time) or now
    return start + timedelta(seconds=policy.step_deadline_seconds(spec))


def iso(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def analysis_due(
    spec: ModelDeploymentSpec, status: Status, now: datetime
) -> AnalysisContext | None:
    """The analysis to run now, or None when no canary is progressing or it is too soon."""
    canary = status.canary
    if status.phase != "Progressing" or canary is None or status.paused:
        return None
    last = parse_time(str(status.last_analysis.get("time", "")))
    if (
        last is not None
        and status.last_analysis.get("version") == canary.version
        and status.last_analysis.get("step") == canary.step
        and now - last < timedelta(seconds=spec.rollout.interval_seconds)
    ):
        return None
    return AnalysisContext(
        step=canary.step,
        weight=canary.weight,
        step_start=parse_time(canary.step_start_time) or now,
        deadline=step_deadline(spec, canary, now),
    )


def step(
    spec: ModelDeploymentSpec,
    status: Status,
    registry: RegistryState,
    verdict: VerdictLike | None,
    now: datetime,
    *,
    controls: Controls = Controls(),
    generation: int = 0,
    spec_digest: str = "",
    numbers: Mapping[str, Any] | None = None,
    expected_seconds: float | None = None,
    health: Mapping[str, ArmHealth] | None = None,
) -> tuple[list[Action], Status]:
    """One reconcile tick. ``verdict`` is None when no analysis ran this tick.

    ``numbers`` (the checks' figures) and ``expected_seconds`` (the estimated time the
    step needs for a decision, None when unknown) are recorded with the analysis.
    ``health`` is the platform's word on each arm this tick (None: not asked).
    """
    actions: list[Action] = []
    spec_changed = bool(status.spec_hash) and spec_digest != status.spec_hash
    status = replace(
        status,
        observed_generation=generation,
        spec_hash=spec_digest,
        registry_available=registry.available,
        paused=controls.paused or spec.rollout.paused,
    )
    if (
        spec_changed
        and status.stable is not None
        and status.phase not in ("Initializing", "Failed")
    ):
        actions.append(EnsureStable(status.stable))
        if status.canary is not None:
            actions.append(SetCanary(status.canary.ref, status.canary.weight))
        actions.append(EmitEvent("SpecChanged", "spec changed: serving resources re-applied"))
    handler = _PHASES.get(status.phase, _initializing)
    extra: dict[str, Any] = {"numbers": dict(numbers or {})}
    if expected_seconds is not None:
        extra["expectedDecisionSeconds"] = round(expected_seconds)
    if handler is _progressing:
        more, status = _progressing(
            spec, status, registry, verdict, now, controls, extra, health=health
        )
    else:
        more, status = handler(spec, status, registry, verdict, now, controls, extra)
    return actions + more + _restart_stable(status, health, actions + more), status


def _restart_stable(
    status: Status, health: Mapping[str, ArmHealth] | None, planned: list[Action]
) -> list[Action]:
    """Start a stable arm whose process is gone again, unless this tick re-applies it anyway."""
    stable = (health or {}).get("stable")
    if stable is None or not stable.gone or status.stable is None:
        return []
    if status.phase not in ("Stable", "RolledBack", "Progressing"):
        return []  # Promoting and RollingBack re-apply the stable arm themselves
    if any(isinstance(x, EnsureStable | SetCanary | PromoteOnPlatform) for x in planned):
        return []
    canary = status.canary
    restart: Action = (
        SetCanary(canary.ref, canary.weight)
        if canary is not None and status.phase == "Progressing"
        else EnsureStable(status.stable)
    )
    note = f"stable version {status.stable.version} restarted: {stable.reason}"
    return [restart, EmitEvent("StableRestarted", note, "Warning")]


_Result = tuple[list[Action], Status]


def _initializing(
    spec: ModelDeploymentSpec,
    status: Status,
    registry: RegistryState,
    verdict: VerdictLike | None,
    now: datetime,
    controls: Controls,
    numbers: Mapping[str, Any],
) -> _Result:
    if not registry.available:
        return [], replace(status, message="waiting for the registry")
    if registry.stable is None:
        msg = f"no version of {spec.model.name} has alias {spec.model.stable_alias}"
        return [], replace(status, phase="Initializing", message=msg)
    msg = f"serving version {registry.stable.version}"
    return [EnsureStable(registry.stable), EmitEvent("Initialized", msg)], replace(
        status, phase="Stable", stable=registry.stable, canary=None, message=msg
    )


def _stable(
    spec: ModelDeploymentSpec,
    status: Status,
    registry: RegistryState,
    verdict: VerdictLike | None,
    now: datetime,
    controls: Controls,
    numbers: Mapping[str, Any],
) -> _Result:
    if not registry.available or status.stable is None:
        return [], status
    actions: list[Action] = []
    serving = status.stable
    if registry.stable is not None and registry.stable.version != serving.version:
        serving = registry.stable
        msg = f"{spec.model.stable_alias} moved to version {serving.version} in the registry"
        actions += [EnsureStable(serving), EmitEvent("StableChanged", msg)]
        status = replace(status, stable=serving, message=msg)
    cand = registry.candidate
    if (
        cand is None
        or cand.version == serving.version
        or status.decided(cand.version)
        or controls.abort == cand.version
    ):
        return actions, status
    more, status = _start(spec, status, cand, now, "RolloutStarted")
    return actions + more, status


def _start(
    spec: ModelDeploymentSpec, status: Status, cand: VersionRef, now: datetime, reason: str
) -> _Result:
    first = schedule.first_step(spec.rollout.steps, False)
    weight = schedule.weight_at(spec.rollout.steps, first)
    canary = CanaryState(
        version=cand.version,
        digest=cand.digest,
        uri=cand.uri,
        weight=weight,
        step=first,
        start_time=iso(now),
        step_start_time=iso(now),
    )
    stage = "shadow phase at 0%" if first == schedule.SHADOW_STEP else f"{weight}%"
    msg = f"canary version {cand.version} started at {stage}"
    return [SetCanary(cand, weight), EmitEvent(reason, msg)], replace(
        status, phase="Progressing", canary=canary, message=msg, last_analysis={}
    )


def _decide(status: Status, phase: str, reason: str, outcome: str = "") -> _Result:
    """Persist a decision; the next tick carries it out (see the module docstring)."""
    kind = "Warning" if phase == "RollingBack" else "Normal"
    canary = status.canary
    version = canary.version if canary else "?"
    marked = replace(canary, outcome=outcome) if canary else None
    return [EmitEvent(phase, f"{phase} version {version}: {reason}", kind)], replace(
        status, phase=phase, message=reason, canary=marked
    )


def _progressing(
    spec: ModelDeploymentSpec,
    status: Status,
    registry: RegistryState,
    verdict: VerdictLike | None,
    now: datetime,
    controls: Controls,
    numbers: Mapping[str, Any],
    health: Mapping[str, ArmHealth] | None = None,
) -> _Result:
    canary: CanaryState | None = status.canary
    if canary is None:
        return _stable(
            spec, replace(status, phase="Stable"), registry, verdict, now, controls, numbers
        )
    if registry.available:
        cand = registry.candidate
        if cand is None:
            return _decide(
                status, "RollingBack", f"{spec.model.candidate_alias} alias removed", "Aborted"
            )
        if cand.version != canary.version:
            entry = HistoryEntry(
                canary.version,
                "Superseded",
                f"{spec.model.candidate_alias} moved to {cand.version}",
                canary.start_time,
                iso(now),
                canary.weight,
            )
            return _start(spec, status.with_history(entry), cand, now, "RolloutRestarted")
        if registry.stable is not None and registry.stable.version == canary.version:
            return _decide(status, "Promoting", "promoted in the registry")
    if controls.abort == canary.version:
        return _decide(status, "RollingBack", "aborted by the user", "RolledBack")
    if controls.promote == canary.version:
        return _decide(status, "Promoting", "promoted by the user")
    fault = _canary_fault(spec, status, canary, (health or {}).get("canary"), now)
    if fault is not None:
        return fault
    if canary.not_ready_since:  # ready again
        status = replace(status, canary=replace(canary, not_ready_since=""))
        canary = status.canary
        assert canary is not None
    if status.paused:
        return [], replace(status, message=f"paused at {canary.weight}%")
    if verdict is None:
        return [], status
    return _judge(spec, status, canary, verdict, now, numbers)


def not_ready_bound(spec: ModelDeploymentSpec) -> float:
    """How long a canary may stay not ready before it is rolled back."""
    return min(NOT_READY_BOUND_SECONDS, policy.step_deadline_seconds(spec))


def _pull(status: Status, reason: str) -> _Result:
    """Roll the canary back for a fault, and take its traffic away in this very tick."""
    actions, after = _decide(status, "RollingBack", reason, "RolledBack")
    return [SetTraffic(0), *actions], after


def _canary_fault(
    spec: ModelDeploymentSpec,
    status: Status,
    canary: CanaryState,
    health: ArmHealth | None,
    now: datetime,
) -> _Result | None:
    """What a canary that failed to start, died or is not ready means now (None: nothing)."""
    if canary.start_error:
        due = parse_time(canary.next_start_time)
        if due is not None and now < due:
            return [], status
        return [SetCanary(canary.ref, canary.weight)], status  # reconcile records the outcome
    if health is None or health.ready:
        return None
    reason = health.reason or "canary not ready"
    if not reason.startswith("canary"):
        reason = f"canary {reason}"
    if health.gone:
        return _pull(status, reason)
    since = parse_time(canary.not_ready_since) or now
    waited = (now - since).total_seconds()
    if waited >= not_ready_bound(spec):
        return _pull(status, f"{reason} (for {waited:.0f}s)")
    marked = replace(canary, not_ready_since=iso(since))
    return [], replace(status, canary=marked, message=f"at {canary.weight}%: {reason}")


def canary_start_failed(
    spec: ModelDeploymentSpec, status: Status, error: str, now: datetime
) -> _Result:
    """Record a failed start of the canary: retry with backoff, or roll back and reject
    after ``MAX_START_ATTEMPTS`` with ``error`` (the predictor's last words) as the reason."""
    canary = status.canary
    if canary is None:
        return [], status
    attempts = canary.start_attempts + 1
    error = error[:500]
    if attempts >= MAX_START_ATTEMPTS:
        failed = replace(canary, start_attempts=attempts, start_error=error, next_start_time="")
        reason = f"canary cannot start ({attempts} attempts): {error}"
        return _pull(replace(status, canary=failed), reason)
    delay = START_BACKOFF_SECONDS * 2 ** (attempts - 1)
    retry = replace(
        canary,
        start_attempts=attempts,
        start_error=error,
        next_start_time=iso(now + timedelta(seconds=delay)),
    )
    msg = (
        f"canary version {canary.version} failed to start (attempt {attempts} of "
        f"{MAX_START_ATTEMPTS}, next in {delay:.0f}s): {error}"
    )
    return [EmitEvent("CanaryStartFailed", msg, "Warning")], replace(
        status, canary=retry, message=msg
    )


def canary_started(status: Status) -> Status:
    """The canary serves after a failed start: clear the error (the count stays)."""
    canary = status.canary
    if canary is None or not canary.start_error:
        return status
    started = replace(canary, start_error="", next_start_time="")
    msg = f"canary version {canary.version} started after {canary.start_attempts + 1} attempts"
    return replace(status, canary=started, message=msg)


def _judge(
    spec: ModelDeploymentSpec,
    status: Status,
    canary: CanaryState,
    verdict: VerdictLike,
    now: datetime,
    extra: Mapping[str, Any],
) -> _Result:
    """Turn the checks' outcome into progression (see the module docstring)."""
    deadline = step_deadline(spec, canary, now)
    left = max((deadline - now).total_seconds(), 0.0)
    outcome, reason = str(verdict.outcome), verdict.reason

    def record(decision: Decision, st: Status) -> Status:
        entry = {
            "time": iso(now),
            "version": canary.version,
            "step": canary.step,
            "weight": canary.weight,
            "outcome": outcome,
            "decision": decision.value,
            "reason": reason,
            "stepDeadline": iso(deadline),
            "secondsLeft": round(left),
            **extra,
        }
        return replace(st, last_analysis=entry)

    if outcome == "fail":
        return _decide(record(Decision.ROLLBACK, status), "RollingBack", reason, "RolledBack")
    steps = spec.rollout.steps
    if outcome == "pass":
        nxt = schedule.next_step(steps, canary.step)
        if nxt is None:
            return _decide(record(Decision.PROMOTE, status), "Promoting", reason)
        weight = schedule.weight_at(steps, nxt)
        msg = f"advanced to {weight}%: {reason}"
        moved = replace(canary, step=nxt, weight=weight, step_start_time=iso(now))
        return [SetTraffic(weight), EmitEvent("Advanced", msg)], replace(
            record(Decision.ADVANCE, status), canary=moved, message=msg
        )
    if now < deadline:
        return [], replace(
            record(Decision.CONTINUE, status), message=f"at {canary.weight}%: {reason}"
        )
    late = f"step at {canary.weight}% still unproven at its deadline"
    if policy.on_inconclusive(spec) == "rollback":
        return _decide(
            record(Decision.ROLLBACK, status), "RollingBack", f"{late}: {reason}", "RolledBack"
        )
    held = replace(record(Decision.HOLD, status), message=f"held at {canary.weight}%: {late}")
    first = status.last_analysis.get("decision") != Decision.HOLD.value or (
        status.last_analysis.get("step"),
        status.last_analysis.get("version"),
    ) != (canary.step, canary.version)
    if first:
        event = EmitEvent("Held", f"version {canary.version} {late}: {reason}", "Warning")
        return [event], held
    return [], held


def _promoting(
    spec: ModelDeploymentSpec,
    status: Status,
    registry: RegistryState,
    verdict: VerdictLike | None,
    now: datetime,
    controls: Controls,
    numbers: Mapping[str, Any],
) -> _Result:
    canary: CanaryState | None = status.canary
    if canary is None:
        return [], replace(status, phase="Stable")
    reason = status.message or "promoted"
    entry = HistoryEntry(canary.version, "Promoted", reason, canary.start_time, iso(now), 100)
    msg = f"version {canary.version} promoted: {reason}"
    actions: list[Action] = [
        PromoteOnPlatform(canary.ref),
        PromoteInRegistry(canary.version, reason),
        EmitEvent("Promoted", msg),
    ]
    return actions, replace(
        status.with_history(entry), phase="Stable", stable=canary.ref, canary=None, message=msg
    )


def _rolling_back(
    spec: ModelDeploymentSpec,
    status: Status,
    registry: RegistryState,
    verdict: VerdictLike | None,
    now: datetime,
    controls: Controls,
    numbers: Mapping[str, Any],
) -> _Result:
    canary: CanaryState | None = status.canary
    if canary is None:
        return [], replace(status, phase="RolledBack")
    outcome = canary.outcome or "RolledBack"
    reason = status.message or "rolled back"
    entry = HistoryEntry(
        canary.version, outcome, reason, canary.start_time, iso(now), canary.weight
    )
    msg = (
        f"version {canary.version} {'aborted' if outcome == 'Aborted' else 'rolled back'}: {reason}"
    )
    actions: list[Action] = [SetTraffic(0), RemoveCanary()]
    if outcome == "RolledBack":
        actions.append(RejectInRegistry(canary.version, reason))
    actions.append(EmitEvent(outcome, msg, "Warning"))
    return actions, replace(
        status.with_history(entry), phase="RolledBack", canary=None, message=msg
    )


def _failed(
    spec: ModelDeploymentSpec,
    status: Status,
    registry: RegistryState,
    verdict: VerdictLike | None,
    now: datetime,
    controls: Controls,
    numbers: Mapping[str, Any],
) -> _Result:
    """A spec that is valid again resumes where the resource was before it failed."""
    if status.stable is None:
        return _initializing(spec, status, registry, verdict, now, controls, numbers)
    back = "Progressing" if status.canary is not None else "Stable"
    ensure = EnsureStable(status.stable)
    actions, status = _PHASES[back](
        spec, replace(status, phase=back), registry, verdict, now, controls, numbers
    )
    return [ensure, *actions], status


_PHASES = {
    "Initializing": _initializing,
    "Failed": _failed,
    "Stable": _stable,
    "RolledBack": _stable,
    "Progressing": _progressing,
    "Promoting": _promoting,
    "RollingBack": _rolling_back,
}


def failed(status: Status, problems: str, *, generation: int, spec_digest: str) -> Status:
    """The status of a resource whose spec is invalid: nothing is applied or asked.

    The registry and the metrics are not contacted, so their availability is unknown.
    """
    return replace(
        status,
        phase="Failed",
        message=problems,
        observed_generation=generation,
        spec_hash=spec_digest,
        registry_available=None,
        metrics_available=None,
    )
