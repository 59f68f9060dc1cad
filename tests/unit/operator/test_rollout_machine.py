"""The rollout state machine: every transition, and a restart at each phase.

A "restart" is a new operator process: it has nothing but the status it reads back
(``Status.from_dict(status.to_dict())``) and the registry, so every test that resumes
goes through that round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from modeldeploy.operator.api.status import (
    ArmHealth,
    CanaryState,
    HistoryEntry,
    Status,
    VersionRef,
)
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.rollout import actions as a
from modeldeploy.operator.rollout.machine import (
    MAX_START_ATTEMPTS,
    Controls,
    RegistryState,
    analysis_due,
    canary_start_failed,
    canary_started,
    iso,
    not_ready_bound,
    step,
)
from modeldeploy.operator.rollout.policy import step_deadline_seconds

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Rollback at the deadline is set explicitly here (the default is hold; HOLD below).
SPEC = parse_spec(
    {
        "model": {"name": "m"},
        "rollout": {"steps": [10, 50, 100], "analysis": {"onInconclusive": "rollback"}},
    }
)
V1, V2, V3 = VersionRef("1", "h1", "u1"), VersionRef("2", "h2", "u2"), VersionRef("3", "h3", "u3")
BOTH = RegistryState(stable=V1, candidate=V2)
DEADLINE = step_deadline_seconds(SPEC)
HOLD = parse_spec(
    {
        "model": {"name": "m"},
        "rollout": {"steps": [10, 50, 100], "analysis": {"onInconclusive": "hold"}},
    }
)


@dataclass(frozen=True)
class V:
    outcome: str  # pass | fail | pending, as the analysis says
    reason: str = "because"


def restart(status: Status) -> Status:
    return Status.from_dict(status.to_dict())


def progressing(step_index: int = 0, weight: int = 10, start: datetime = T0) -> Status:
    canary = CanaryState("2", "h2", "u2", weight, step_index, iso(start), iso(start))
    return Status(phase="Progressing", stable=V1, canary=canary)


def kinds(actions: list) -> list[str]:
    return [type(x).__name__ for x in actions]


def test_initializing_waits_for_a_stable_version() -> None:
    acts, st = step(SPEC, Status(), RegistryState(), None, T0)
    assert acts == [] and st.phase == "Initializing" and "champion" in st.message


def test_initializing_waits_when_registry_is_down() -> None:
    acts, st = step(SPEC, Status(), RegistryState(available=False), None, T0)
    assert acts == [] and st.phase == "Initializing" and not st.registry_available


def test_initializing_serves_the_stable_alias() -> None:
    acts, st = step(SPEC, Status(), RegistryState(stable=V1), None, T0)
    assert acts[0] == a.EnsureStable(V1)
    assert st.phase == "Stable" and st.stable == V1


def test_stable_without_candidate_is_a_no_op() -> None:
    status = Status(phase="Stable", stable=V1)
    acts, st = step(SPEC, status, RegistryState(stable=V1), None, T0)
    assert acts == [] and st == status


def test_new_candidate_starts_a_rollout_at_the_first_step() -> None:
    acts, st = step(SPEC, Status(phase="Stable", stable=V1), BOTH, None, T0)
    assert acts[0] == a.SetCanary(V2, 10)
    assert st.phase == "Progressing" and st.canary.version == "2" and st.canary.weight == 10


def test_candidate_equal_to_stable_is_ignored() -> None:
    acts, st = step(
        SPEC, Status(phase="Stable", stable=V1), RegistryState(V1 and True, V1, V1), None, T0
    )
    assert acts == [] and st.phase == "Stable"


def test_stable_alias_moved_outside_a_rollout_is_followed() -> None:
    acts, st = step(SPEC, Status(phase="Stable", stable=V1), RegistryState(stable=V3), None, T0)
    assert acts[0] == a.EnsureStable(V3) and st.stable == V3


def test_continue_keeps_the_weight_and_records_the_analysis() -> None:
    acts, st = step(
        SPEC, progressing(), BOTH, V("pending", "need more labels"), T0, numbers={"n": 3}
    )
    assert acts == [] and st.canary.weight == 10
    assert st.last_analysis["decision"] == "continue" and st.last_analysis["numbers"] == {"n": 3}


def test_advance_moves_to_the_next_weight() -> None:
    acts, st = step(SPEC, progressing(), BOTH, V("pass"), T0 + timedelta(minutes=1))
    assert acts[0] == a.SetTraffic(50)
    assert st.canary.step == 1 and st.canary.step_start_time == iso(T0 + timedelta(minutes=1))


def test_promote_at_the_last_step_decides_first_then_promotes() -> None:
    acts, st = step(SPEC, progressing(2, 100), BOTH, V("pass", "better"), T0)
    assert kinds(acts) == ["EmitEvent"] and st.phase == "Promoting"
    acts, st = step(SPEC, restart(st), BOTH, None, T0)
    assert kinds(acts) == ["PromoteOnPlatform", "PromoteInRegistry", "EmitEvent"]
    assert st.phase == "Stable" and st.stable == V2 and st.canary is None
    assert st.history[-1].outcome == "Promoted"


def test_advance_past_the_last_step_is_a_promotion() -> None:
    _, st = step(SPEC, progressing(2, 100), BOTH, V("pass"), T0)
    assert st.phase == "Promoting"


def test_rollback_verdict_pins_traffic_and_rejects_in_registry() -> None:
    acts, st = step(SPEC, progressing(1, 50), BOTH, V("fail", "accuracy dropped"), T0)
    assert st.phase == "RollingBack" and st.canary.outcome == "RolledBack"
    acts, st = step(SPEC, restart(st), BOTH, None, T0)
    assert kinds(acts) == ["SetTraffic", "RemoveCanary", "RejectInRegistry", "EmitEvent"]
    assert acts[0] == a.SetTraffic(0)
    assert acts[2] == a.RejectInRegistry("2", "accuracy dropped")
    assert st.phase == "RolledBack" and st.canary is None
    assert st.history[-1] == HistoryEntry(
        "2", "RolledBack", "accuracy dropped", iso(T0), iso(T0), 50
    )


def test_a_rolled_back_candidate_is_not_retried() -> None:
    st = Status(phase="RolledBack", stable=V1).with_history(HistoryEntry("2", "RolledBack"))
    acts, st2 = step(SPEC, st, BOTH, None, T0)
    assert acts == [] and st2.phase == "RolledBack"


def test_a_new_candidate_after_rollback_starts_again() -> None:
    st = Status(phase="RolledBack", stable=V1).with_history(HistoryEntry("2", "RolledBack"))
    _, st2 = step(SPEC, st, RegistryState(stable=V1, candidate=V3), None, T0)
    assert st2.phase == "Progressing" and st2.canary.version == "3"


def test_candidate_moved_mid_rollout_restarts_on_the_new_version() -> None:
    acts, st = step(SPEC, progressing(1, 50), RegistryState(stable=V1, candidate=V3), None, T0)
    assert acts[0] == a.SetCanary(V3, 10)
    assert st.canary.version == "3" and st.canary.step == 0
    assert st.history[-1].outcome == "Superseded" and st.history[-1].version == "2"


def test_candidate_removed_mid_rollout_aborts_without_rejecting() -> None:
    _, st = step(SPEC, progressing(), RegistryState(stable=V1), None, T0)
    assert st.phase == "RollingBack"
    acts, st = step(SPEC, restart(st), RegistryState(stable=V1), None, T0)
    assert "RejectInRegistry" not in kinds(acts) and a.SetTraffic(0) in acts
    assert st.phase == "RolledBack" and st.history[-1].outcome == "Aborted"


def test_stable_alias_moved_to_the_canary_counts_as_promotion() -> None:
    _, st = step(SPEC, progressing(), RegistryState(stable=V2, candidate=V2), None, T0)
    assert st.phase == "Promoting"


def test_registry_down_mid_rollout_keeps_going_on_verdicts() -> None:
    acts, st = step(SPEC, progressing(), RegistryState(available=False), V("pass"), T0)
    assert a.SetTraffic(50) in acts and not st.registry_available


@pytest.mark.parametrize(
    ("controls", "phase"),
    [
        (Controls(promote="2"), "Promoting"),
        (Controls(abort="2"), "RollingBack"),
        (Controls(promote="9"), "Progressing"),  # names another version: ignored
    ],
)
def test_manual_promote_and_abort_name_the_canary_version(controls: Controls, phase: str) -> None:
    _, st = step(SPEC, progressing(), BOTH, None, T0, controls=controls)
    assert st.phase == phase


def test_manual_abort_is_a_rejection() -> None:
    _, st = step(SPEC, progressing(), BOTH, None, T0, controls=Controls(abort="2"))
    acts, _ = step(SPEC, st, BOTH, None, T0, controls=Controls(abort="2"))
    assert "RejectInRegistry" in kinds(acts)


def test_an_aborted_version_does_not_start_again() -> None:
    acts, st = step(
        SPEC, Status(phase="Stable", stable=V1), BOTH, None, T0, controls=Controls(abort="2")
    )
    assert acts == [] and st.phase == "Stable"


def test_pause_ignores_verdicts_and_resume_continues() -> None:
    acts, st = step(SPEC, progressing(), BOTH, V("pass"), T0, controls=Controls(paused=True))
    assert acts == [] and st.paused and st.canary.weight == 10
    acts, st = step(SPEC, st, BOTH, V("pass"), T0)
    assert a.SetTraffic(50) in acts and not st.paused


def test_pause_through_the_spec() -> None:
    spec = parse_spec({"model": {"name": "m"}, "rollout": {"paused": True}})
    acts, _ = step(spec, progressing(), BOTH, V("fail"), T0)
    assert acts == []


def test_spec_change_reapplies_serving_resources() -> None:
    st = replace(progressing(), spec_hash="old")
    acts, st2 = step(SPEC, st, BOTH, None, T0, spec_digest="new")
    assert kinds(acts)[:2] == ["EnsureStable", "SetCanary"] and st2.spec_hash == "new"


def test_same_spec_hash_is_a_no_op() -> None:
    st = replace(progressing(), spec_hash="same")
    acts, _ = step(SPEC, st, BOTH, None, T0, spec_digest="same")
    assert acts == []


def test_failed_resumes_where_it_was_when_the_spec_is_fixed() -> None:
    st = replace(progressing(), phase="Failed")
    acts, st2 = step(SPEC, st, BOTH, V("pass"), T0)
    assert acts[0] == a.EnsureStable(V1) and st2.phase == "Progressing" and st2.canary.weight == 50


def test_history_is_bounded() -> None:
    st = Status()
    for i in range(30):
        st = st.with_history(HistoryEntry(str(i), "Promoted"))
    assert len(st.history) == 10 and st.history[-1].version == "29"


# Restarts at each phase: a tick from the status read back gives the same result as
# a tick from the in-memory status, and a repeated tick never decides twice.
@pytest.mark.parametrize(
    "status",
    [
        Status(),
        Status(phase="Stable", stable=V1),
        progressing(),
        replace(progressing(), phase="Promoting"),
        replace(progressing(), phase="RollingBack"),
        Status(phase="RolledBack", stable=V1).with_history(HistoryEntry("2", "RolledBack")),
    ],
    ids=["Initializing", "Stable", "Progressing", "Promoting", "RollingBack", "RolledBack"],
)
def test_restart_at_each_phase_resumes_identically(status: Status) -> None:
    assert step(SPEC, restart(status), BOTH, None, T0) == step(SPEC, status, BOTH, None, T0)


def test_never_promotes_twice() -> None:
    st = replace(progressing(2, 100), phase="Promoting")
    acts1, st = step(SPEC, st, BOTH, None, T0)
    # The registry has not caught up yet (challenger still on 2): no second promotion.
    acts2, st = step(SPEC, restart(st), RegistryState(stable=V2, candidate=V2), None, T0)
    assert kinds(acts1).count("PromoteInRegistry") == 1 and acts2 == []
    # champion moved back to 1 by hand: followed, but 2 is decided and never re-promoted.
    acts3, st = step(SPEC, st, BOTH, None, T0)
    assert kinds(acts3) == ["EnsureStable", "EmitEvent"] and st.phase == "Stable"


def test_promoting_cannot_turn_into_a_rollback() -> None:
    st = replace(progressing(2, 100), phase="Promoting")
    acts, st = step(SPEC, st, RegistryState(stable=V1), V("fail"), T0, controls=Controls(abort="2"))
    assert "PromoteInRegistry" in kinds(acts) and "RejectInRegistry" not in kinds(acts)


def test_rolling_back_cannot_turn_into_a_promotion() -> None:
    st = replace(
        progressing(),
        phase="RollingBack",
        canary=replace(progressing().canary, outcome="RolledBack"),
    )
    acts, st = step(
        SPEC, st, RegistryState(stable=V2), V("pass"), T0, controls=Controls(promote="2")
    )
    assert "PromoteInRegistry" not in kinds(acts) and st.phase == "RolledBack"


def test_analysis_is_due_once_per_interval() -> None:
    st = progressing()
    ctx = analysis_due(SPEC, st, T0)
    assert ctx is not None and ctx.deadline == T0 + timedelta(seconds=DEADLINE)
    _, st = step(SPEC, st, BOTH, V("pending"), T0)
    assert analysis_due(SPEC, st, T0 + timedelta(seconds=5)) is None
    assert analysis_due(SPEC, st, T0 + timedelta(seconds=SPEC.rollout.interval_seconds)) is not None


def test_analysis_is_due_at_once_after_a_step_change() -> None:
    _, st = step(SPEC, progressing(), BOTH, V("pass"), T0)
    ctx = analysis_due(SPEC, st, T0 + timedelta(seconds=1))
    assert ctx is not None and ctx.weight == 50


def test_no_analysis_outside_progressing_or_when_paused() -> None:
    assert analysis_due(SPEC, Status(phase="Stable", stable=V1), T0) is None
    assert analysis_due(SPEC, replace(progressing(), paused=True), T0) is None


# The machine owns progression: (outcome, step, time in the step, onInconclusive) ->
# (phase, weight, recorded decision). The deadline counts from the step's start.
@pytest.mark.parametrize(
    ("outcome", "step_index", "seconds_in_step", "spec", "phase", "weight", "decision"),
    [
        ("fail", 0, 1, SPEC, "RollingBack", 10, "rollback"),
        ("fail", 1, DEADLINE + 5, HOLD, "RollingBack", 50, "rollback"),
        ("pass", 0, 1, SPEC, "Progressing", 50, "advance"),
        ("pass", 1, 1, SPEC, "Progressing", 100, "advance"),
        ("pass", 2, 1, SPEC, "Promoting", 100, "promote"),
        ("pass", 1, DEADLINE + 5, HOLD, "Progressing", 100, "advance"),
        ("pending", 0, 1, SPEC, "Progressing", 10, "continue"),
        ("pending", 2, DEADLINE - 1, SPEC, "Progressing", 100, "continue"),
        ("pending", 1, DEADLINE, SPEC, "RollingBack", 50, "rollback"),
        ("pending", 2, DEADLINE, HOLD, "Progressing", 100, "hold"),
        ("pending", 2, 10 * DEADLINE, HOLD, "Progressing", 100, "hold"),
    ],
)
def test_judging_table(outcome, step_index, seconds_in_step, spec, phase, weight, decision) -> None:
    weights = (10, 50, 100)
    # the canary started long before this step: only the step's own start counts
    canary = CanaryState(
        "2",
        "h2",
        "u2",
        weights[step_index],
        step_index,
        iso(T0 - timedelta(seconds=5 * DEADLINE)),
        iso(T0),
    )
    status = Status(phase="Progressing", stable=V1, canary=canary)
    now = T0 + timedelta(seconds=seconds_in_step)
    _, st = step(spec, status, BOTH, V(outcome, "why"), now, numbers={"n": 1})
    assert st.phase == phase
    assert st.canary.weight == weight
    assert st.last_analysis["decision"] == decision
    assert st.last_analysis["outcome"] == outcome
    assert st.last_analysis["numbers"] == {"n": 1}


def test_a_late_step_gets_its_own_full_deadline() -> None:
    # step 1 started just now, although the canary started two deadlines ago
    canary = CanaryState(
        "2",
        weight=50,
        step=1,
        start_time=iso(T0),
        step_start_time=iso(T0 + timedelta(seconds=2 * DEADLINE)),
    )
    status = Status(phase="Progressing", stable=V1, canary=canary)
    now = T0 + timedelta(seconds=2 * DEADLINE + 10)
    _, st = step(SPEC, status, BOTH, V("pending"), now)
    assert st.phase == "Progressing" and st.last_analysis["decision"] == "continue"
    assert st.last_analysis["secondsLeft"] == DEADLINE - 10


def test_pending_at_the_deadline_is_never_promoted_even_on_the_last_step() -> None:
    for spec in (SPEC, HOLD):
        late = T0 + timedelta(seconds=DEADLINE)
        acts, st = step(spec, progressing(2, 100), BOTH, V("pending", "undecided"), late)
        assert st.phase != "Promoting"
        assert "PromoteOnPlatform" not in kinds(acts) and "PromoteInRegistry" not in kinds(acts)


def test_rollback_at_the_deadline_says_why() -> None:
    late = T0 + timedelta(seconds=DEADLINE)
    _, st = step(SPEC, progressing(), BOTH, V("pending", "accuracy: 12 labels"), late)
    assert st.phase == "RollingBack"
    assert st.message == "step at 10% still unproven at its deadline: accuracy: 12 labels"


def test_hold_says_so_once_and_proof_later_still_advances() -> None:
    late = T0 + timedelta(seconds=DEADLINE)
    acts, st = step(HOLD, progressing(), BOTH, V("pending"), late)
    assert kinds(acts) == ["EmitEvent"] and acts[0].reason == "Held"
    assert st.message == "held at 10%: step at 10% still unproven at its deadline"
    acts, st = step(HOLD, restart(st), BOTH, V("pending"), late + timedelta(minutes=1))
    assert acts == [] and st.last_analysis["decision"] == "hold"
    acts, st = step(HOLD, st, BOTH, V("pass"), late + timedelta(minutes=2))
    assert a.SetTraffic(50) in acts and st.canary.step == 1


def test_expected_decision_time_is_recorded_with_the_analysis() -> None:
    _, st = step(SPEC, progressing(), BOTH, V("pending"), T0, expected_seconds=1234.4)
    assert st.last_analysis["expectedDecisionSeconds"] == 1234
    assert st.last_analysis["secondsLeft"] == DEADLINE


# --- faults of the serving arms (the platform's health, asked every tick) --------------

UP = {"stable": ArmHealth(True), "canary": ArmHealth(True)}
DEAD = {
    "stable": ArmHealth(True),
    "canary": ArmHealth(False, "canary process exited (code 1)", gone=True),
}
UNREADY = {"stable": ArmHealth(True), "canary": ArmHealth(False, "canary model not ready")}


def test_a_dead_canary_loses_its_traffic_and_rolls_back_on_the_same_tick() -> None:
    acts, st = step(SPEC, progressing(1, 50), BOTH, V("pending"), T0, health=DEAD)
    assert kinds(acts) == ["SetTraffic", "EmitEvent"] and acts[0] == a.SetTraffic(0)
    assert st.phase == "RollingBack" and st.message == "canary process exited (code 1)"
    acts, st = step(SPEC, restart(st), BOTH, None, T0 + timedelta(seconds=2))
    assert st.phase == "RolledBack" and st.canary is None
    assert a.RejectInRegistry("2", "canary process exited (code 1)") in acts
    assert st.history[-1].outcome == "RolledBack" and "exited (code 1)" in st.history[-1].reason


def test_a_dead_canary_is_rolled_back_even_while_paused() -> None:
    _, st = step(SPEC, progressing(), BOTH, None, T0, controls=Controls(paused=True), health=DEAD)
    assert st.phase == "RollingBack"


def test_an_unready_canary_waits_up_to_its_bound_then_rolls_back_with_the_reason() -> None:
    bound = not_ready_bound(SPEC)
    acts, st = step(SPEC, progressing(), BOTH, V("pending"), T0, health=UNREADY)
    assert acts == [] and st.phase == "Progressing" and st.canary is not None
    assert st.canary.not_ready_since == iso(T0) and "canary model not ready" in st.message
    later = T0 + timedelta(seconds=bound - 1)
    _, st = step(SPEC, restart(st), BOTH, V("pending"), later, health=UNREADY)
    assert st.phase == "Progressing" and st.canary and st.canary.not_ready_since == iso(T0)
    acts, st = step(
        SPEC, restart(st), BOTH, V("pending"), later + timedelta(seconds=1), health=UNREADY
    )
    assert st.phase == "RollingBack" and acts[0] == a.SetTraffic(0)
    assert st.message == f"canary model not ready (for {bound:.0f}s)"


def test_a_canary_ready_again_forgets_when_it_was_not() -> None:
    _, st = step(SPEC, progressing(), BOTH, None, T0, health=UNREADY)
    _, st = step(SPEC, restart(st), BOTH, None, T0 + timedelta(seconds=5), health=UP)
    assert st.phase == "Progressing" and st.canary and st.canary.not_ready_since == ""


def test_health_not_asked_changes_nothing() -> None:
    assert step(SPEC, progressing(), BOTH, None, T0) == step(
        SPEC, progressing(), BOTH, None, T0, health=UP
    )


def test_a_canary_that_cannot_start_is_retried_with_backoff_then_rejected() -> None:
    st = progressing()
    error = "canary predictor for version 2 failed to start: DigestMismatch: model.safetensors"
    now = T0
    for attempt in range(1, MAX_START_ATTEMPTS):
        acts, st = canary_start_failed(SPEC, st, error, now)
        st = restart(st)  # a restarted operator keeps counting
        assert st.canary and st.canary.start_attempts == attempt and st.canary.start_error == error
        assert kinds(acts) == ["EmitEvent"] and acts[0].reason == "CanaryStartFailed"
        assert f"attempt {attempt} of {MAX_START_ATTEMPTS}" in st.message
        due = datetime.strptime(st.canary.next_start_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert due > now
        acts, _ = step(SPEC, st, BOTH, V("pending"), due - timedelta(seconds=1), health={})
        assert acts == []  # waiting out the backoff
        acts, st = step(SPEC, st, BOTH, V("pending"), due, health={})
        assert acts == [a.SetCanary(V2, 10)]  # the next attempt
        now = due
    acts, st = canary_start_failed(SPEC, st, error, now)
    assert st.phase == "RollingBack" and acts[0] == a.SetTraffic(0)
    acts, st = step(SPEC, restart(st), BOTH, None, now)
    reject = [x for x in acts if isinstance(x, a.RejectInRegistry)]
    assert reject and "DigestMismatch: model.safetensors" in reject[0].reason
    assert st.phase == "RolledBack" and st.history[-1].outcome == "RolledBack"
    # the rejected candidate is not started again
    acts, st = step(SPEC, restart(st), BOTH, None, now + timedelta(seconds=60))
    assert not any(isinstance(x, a.SetCanary) for x in acts)


def test_a_canary_that_starts_after_a_failure_keeps_its_count() -> None:
    _, st = canary_start_failed(SPEC, progressing(), "boom", T0)
    st = canary_started(st)
    assert st.canary and st.canary.start_error == "" and st.canary.start_attempts == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status(phase="Stable", stable=V1), [a.EnsureStable(V1)]),
        (Status(phase="RolledBack", stable=V1), [a.EnsureStable(V1)]),
        (progressing(1, 50), [a.SetCanary(V2, 50)]),
    ],
)
def test_a_dead_stable_arm_is_started_again(status: Status, expected: list) -> None:
    gone = {"stable": ArmHealth(False, "stable process exited (code -9)", gone=True)}
    registry = RegistryState(stable=V1, candidate=V2 if status.canary else None)
    acts, st = step(SPEC, status, registry, None, T0, health=gone)
    assert [x for x in acts if not isinstance(x, a.EmitEvent)] == expected
    events = [x for x in acts if isinstance(x, a.EmitEvent)]
    assert events[-1].reason == "StableRestarted" and "code -9" in events[-1].message
    assert st.phase == status.phase


def test_promoting_does_not_restart_stable_twice() -> None:
    gone = {"stable": ArmHealth(False, "gone", gone=True)}
    st = replace(progressing(1, 100), phase="Promoting")
    acts, _ = step(SPEC, st, RegistryState(stable=V1, candidate=V2), None, T0, health=gone)
    assert kinds(acts).count("PromoteOnPlatform") == 1 and "EnsureStable" not in kinds(acts)
