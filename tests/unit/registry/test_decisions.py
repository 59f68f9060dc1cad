"""Decision rules: promotion moves champion and clears challenger; rejection never touches
champion; every decision is recorded once and repeating it changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modeldeploy.registry.base import TAG_OUTCOME, TAG_REASON, DecisionConflict
from modeldeploy.registry.decisions import (
    AliasNames,
    DeleteAlias,
    Outcome,
    SetAlias,
    SetTags,
    plan_promotion,
    plan_rejection,
    promote,
    reject,
)
from tests.support.in_memory_registry import InMemoryRegistry

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _kinds(steps):
    return [type(s).__name__ for s in steps]


@pytest.mark.parametrize(
    ("aliases", "tags", "expected"),
    [
        ({"champion": "1", "challenger": "2"}, {}, ["SetAlias", "DeleteAlias", "SetTags"]),
        ({"champion": "2"}, {}, ["SetTags"]),  # aliases done, record missing (interrupted)
        ({"champion": "2"}, {TAG_OUTCOME: "promoted"}, []),  # all done: nothing to do
        ({"champion": "1", "challenger": "3"}, {}, ["SetAlias", "SetTags"]),  # newer candidate kept
        ({}, {TAG_OUTCOME: "rejected"}, ["SetAlias", "SetTags"]),  # a person overrides
    ],
    ids=["fresh", "interrupted", "repeated", "newer-challenger-kept", "override-rejection"],
)
def test_promotion_plans_only_missing_steps(aliases, tags, expected) -> None:
    assert _kinds(plan_promotion("2", aliases, tags, "ok", NOW)) == expected


@pytest.mark.parametrize(
    ("aliases", "tags", "expected"),
    [
        ({"champion": "1", "challenger": "2"}, {}, ["DeleteAlias", "SetTags"]),
        ({"champion": "1"}, {TAG_OUTCOME: "rejected"}, []),
        ({"champion": "1", "challenger": "3"}, {}, ["SetTags"]),
    ],
    ids=["fresh", "repeated", "newer-challenger-kept"],
)
def test_rejection_plans_only_missing_steps_and_never_moves_champion(aliases, tags, expected):
    steps = plan_rejection("2", aliases, tags, "worse", NOW)
    assert _kinds(steps) == expected
    assert not any(isinstance(s, SetAlias) for s in steps)


def test_rejecting_the_champion_is_a_conflict() -> None:
    with pytest.raises(DecisionConflict, match="champion"):
        plan_rejection("1", {"champion": "1"}, {}, "no", NOW)


def test_alias_names_are_configurable_and_must_differ() -> None:
    names = AliasNames(stable="prod", candidate="canary")
    steps = plan_promotion("2", {"prod": "1", "canary": "2"}, {}, "ok", NOW, names)
    assert steps[:2] == [SetAlias("prod", "2"), DeleteAlias("canary")]
    with pytest.raises(ValueError):
        AliasNames("same", "same")


def test_reason_is_short_and_single_line() -> None:
    (step,) = plan_rejection("2", {}, {}, "line one\nline two   " + "x" * 900, NOW)
    assert isinstance(step, SetTags)
    assert "\n" not in step.tags[TAG_REASON] and len(step.tags[TAG_REASON]) == 500


def test_promote_then_repeat_changes_nothing() -> None:
    reg = InMemoryRegistry()
    reg.add_version("m")
    reg.add_version("m")
    reg.set_alias("m", "champion", "1")
    reg.set_alias("m", "challenger", "2")
    first = promote(reg, "m", "2", "accuracy 0.86 vs 0.85", now=NOW)
    assert first.changed and first.outcome is Outcome.PROMOTED
    state = (reg.get_model("m").aliases, reg.get_version("m", "2").tags)
    again = promote(reg, "m", "2", "a different reason", now=datetime(2027, 1, 1, tzinfo=UTC))
    assert not again.changed
    assert (reg.get_model("m").aliases, reg.get_version("m", "2").tags) == state
    assert state[0] == {"champion": "2"}
    assert state[1][TAG_REASON] == "accuracy 0.86 vs 0.85"


def test_reject_then_repeat_changes_nothing() -> None:
    reg = InMemoryRegistry()
    reg.add_version("m")
    reg.add_version("m")
    reg.set_alias("m", "champion", "1")
    reg.set_alias("m", "challenger", "2")
    assert reject(reg, "m", "2", "p99 80ms over 50ms", now=NOW).changed
    assert not reject(reg, "m", "2", "p99 80ms over 50ms", now=NOW).changed
    assert reg.get_model("m").aliases == {"champion": "1"}
    assert reg.get_version("m", "2").tags[TAG_OUTCOME] == "rejected"
