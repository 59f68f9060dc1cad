"""Conditions derive from the status in one function and keep unchanged transition times."""

from __future__ import annotations

from dataclasses import replace

from modeldeploy.operator.api.conditions import CONDITION_TYPES, derive
from modeldeploy.operator.api.status import CanaryState, Status, VersionRef


def _by_type(conds) -> dict:
    return {c["type"]: c for c in conds}


def test_all_five_conditions_are_always_present() -> None:
    conds = derive(Status(), [], "t0")
    assert tuple(c["type"] for c in conds) == CONDITION_TYPES


def test_stable_is_ready_and_not_progressing() -> None:
    c = _by_type(derive(Status(phase="Stable", stable=VersionRef("1")), [], "t0"))
    assert c["Ready"]["status"] == "True"
    assert c["Progressing"]["status"] == "False"
    assert c["Degraded"]["status"] == "False"


def test_progressing_and_paused_reason() -> None:
    status = Status(phase="Progressing", stable=VersionRef("1"), canary=CanaryState("2"))
    assert _by_type(derive(status, [], "t0"))["Progressing"]["reason"] == "Progressing"
    paused = _by_type(derive(replace(status, paused=True), [], "t0"))
    assert paused["Progressing"]["reason"] == "Paused"


def test_rolled_back_and_failed_are_degraded() -> None:
    for phase in ("RolledBack", "Failed"):
        c = _by_type(derive(Status(phase=phase, stable=VersionRef("1")), [], "t0"))
        assert c["Degraded"]["status"] == "True"
    assert _by_type(derive(Status(phase="Failed"), [], "t0"))["Ready"]["status"] == "False"


def test_registry_and_metrics_availability() -> None:
    status = Status(phase="Stable", registry_available=False, metrics_available=False)
    c = _by_type(derive(status, [], "t0"))
    assert c["RegistryAvailable"]["status"] == "False"
    assert c["MetricsAvailable"]["status"] == "False"


def test_last_transition_time_kept_when_status_unchanged() -> None:
    first = derive(Status(phase="Stable", stable=VersionRef("1")), [], "t0")
    again = _by_type(derive(Status(phase="Stable", stable=VersionRef("1")), first, "t1"))
    assert again["Ready"]["lastTransitionTime"] == "t0"
    moved = _by_type(derive(Status(phase="Failed", stable=VersionRef("1")), first, "t2"))
    assert moved["Ready"]["lastTransitionTime"] == "t2"
    assert moved["RegistryAvailable"]["lastTransitionTime"] == "t0"


def test_status_round_trips_through_its_dict() -> None:
    status = Status(
        phase="Progressing",
        stable=VersionRef("1", "abc", "u"),
        canary=CanaryState("2", weight=25, step=1, start_time="s", outcome=""),
    )
    assert Status.from_dict(status.to_dict()) == status


def _progressing_with(**last: object) -> Status:
    canary = CanaryState("2", weight=25, step=1)
    record = {"version": "2", "step": 1, **last}
    return Status(phase="Progressing", stable=VersionRef("1"), canary=canary, last_analysis=record)


def test_underpowered_when_the_estimate_exceeds_the_time_left() -> None:
    c = _by_type(derive(_progressing_with(expectedDecisionSeconds=7200, secondsLeft=600), [], "t"))
    assert c["Underpowered"]["status"] == "True"
    assert c["Underpowered"]["reason"] == "NotEnoughData"
    assert "2.0 h" in c["Underpowered"]["message"] and "10 min" in c["Underpowered"]["message"]
    ok = _by_type(derive(_progressing_with(expectedDecisionSeconds=60, secondsLeft=600), [], "t"))
    assert ok["Underpowered"]["status"] == "False" and ok["Underpowered"]["reason"] == "EnoughData"


def test_underpowered_ignores_an_analysis_of_another_step_or_none() -> None:
    stale = _progressing_with(expectedDecisionSeconds=7200, secondsLeft=600)
    stale = replace(stale, canary=replace(stale.canary, step=2, weight=50))
    assert _by_type(derive(stale, [], "t"))["Underpowered"]["reason"] == "NoEstimate"
    assert _by_type(derive(Status(), [], "t"))["Underpowered"]["status"] == "False"


def test_a_held_step_says_so_in_progressing() -> None:
    c = _by_type(derive(_progressing_with(decision="hold"), [], "t"))
    assert c["Progressing"]["status"] == "True" and c["Progressing"]["reason"] == "HeldInconclusive"


def test_not_contacted_availability_is_unknown() -> None:
    status = Status(phase="Failed", registry_available=None, metrics_available=None)
    c = _by_type(derive(status, [], "t"))
    for kind in ("RegistryAvailable", "MetricsAvailable"):
        assert c[kind]["status"] == "Unknown"
        assert c[kind]["message"] == "not contacted: the spec is invalid"
