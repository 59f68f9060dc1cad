"""Rules of pairing: outcomes, label matching, item ids and the bounded score book."""

from __future__ import annotations

import pytest

from modeldeploy.serving.codecs import item_ids as predictor_item_ids
from modeldeploy.serving.router.pairing import (
    ArmPrediction,
    InputBook,
    RescoreBudget,
    RescorePacer,
    ScoreBook,
    StoredInput,
    item_ids,
    paired_outcome,
    pairs,
    request_of,
    rescore_role,
    shadow_agrees,
)

NEG = ArmPrediction("1", "negative", 0)
POS = ArmPrediction("2", "positive", 1)


@pytest.mark.parametrize(
    ("stable_correct", "canary_correct", "outcome"),
    [
        (True, True, "both_correct"),
        (True, False, "stable_only"),
        (False, True, "canary_only"),
        (False, False, "both_wrong"),
    ],
)
def test_paired_outcome_names_the_arm_that_was_right(
    stable_correct: bool, canary_correct: bool, outcome: str
) -> None:
    assert paired_outcome(stable_correct, canary_correct) == outcome


@pytest.mark.parametrize(
    ("label", "matches"),
    [(1, True), ("1", True), ("positive", True), (0, False), ("negative", False), (True, False)],
)
def test_a_label_matches_by_index_digit_string_or_name(label: object, matches: bool) -> None:
    assert POS.matches(label) is matches


@pytest.mark.parametrize("count", [1, 2, 5])
def test_item_ids_follow_the_predictor_rule(count: int) -> None:
    assert item_ids("req", count) == predictor_item_ids("req", count)
    assert {request_of(i) for i in item_ids("req", count)} == {"req"}


def test_request_of_keeps_ids_with_slashes_that_are_not_item_suffixes() -> None:
    assert request_of("tenant/abc") == "tenant/abc"
    assert request_of("tenant/abc/3") == "tenant/abc"


def test_stable_pairs_with_canary_and_shadow_but_candidates_do_not_pair_alone() -> None:
    assert pairs({"stable": NEG, "canary": POS}) == [(NEG, POS)]
    assert pairs({"stable": NEG, "canary": POS, "shadow": NEG}) == [(NEG, POS), (NEG, NEG)]
    assert pairs({"canary": POS, "shadow": NEG}) == []


def test_shadow_agreement_needs_both_answers() -> None:
    assert shadow_agrees({"stable": NEG, "shadow": NEG}) is True
    assert shadow_agrees({"stable": NEG, "shadow": POS}) is False
    assert shadow_agrees({"stable": NEG}) is None


def test_score_book_merges_arms_and_forgets_after_ttl_and_capacity() -> None:
    now = [0.0]
    book = ScoreBook(capacity=3, ttl_s=10, clock=lambda: now[0])
    book.record(["a"], "stable", [NEG])
    book.record(["a"], "canary", [POS])
    item = book.get("a")
    assert item is not None and item.predictions == {"stable": NEG, "canary": POS}
    now[0] = 10.0
    assert book.get("a") is None
    book.record(["b", "c", "d", "e"], "stable", [NEG, NEG, NEG, NEG])
    assert book.get("b") is None and book.get("e") is not None and len(book) == 3


@pytest.mark.parametrize(
    ("scored", "arms", "role"),
    [
        ({"stable": NEG}, ("stable", "canary"), "canary"),
        ({"canary": POS}, ("stable", "canary"), "stable"),
        ({"canary": POS, "shadow": NEG}, ("stable", "canary", "shadow"), "stable"),
        ({"stable": NEG, "canary": POS}, ("stable", "canary"), None),  # already paired
        ({"stable": NEG}, ("stable",), None),  # no canary to pair with
        ({"stable": NEG, "shadow": POS}, ("stable", "shadow"), None),  # the shadow pairs already
    ],
)
def test_the_missing_one_of_stable_and_canary_rescores(
    scored: dict[str, ArmPrediction], arms: tuple[str, ...], role: str | None
) -> None:
    assert rescore_role(scored, arms) == role


def stored(size: int) -> StoredInput:
    return StoredInput("/p", b"x" * (size - 2), {}, "v1")


def test_input_book_is_bounded_by_count_bytes_and_age() -> None:
    now = [0.0]
    book = InputBook(capacity=3, max_bytes=100, ttl_s=10, clock=lambda: now[0])
    for name in "abcd":
        assert book.put(name, stored(20))
    assert book.get("a") is None and book.get("d") is not None and len(book) == 3
    assert book.put("big", stored(70))  # 60 + 70 > 100: the oldest go until it fits
    assert book.get("b") is None and book.get("c") is None and book.get("d") is not None
    assert book.bytes == 90
    assert not book.put("huge", stored(101)) and book.get("huge") is None
    now[0] = 10.0
    assert book.get("d") is None and len(book) == 0 and book.bytes == 0
    assert book.put("e", stored(10)) and book.pop("e") is not None and book.bytes == 0


def test_rescore_budget_is_a_token_bucket_and_zero_turns_it_off() -> None:
    now = [0.0]
    budget = RescoreBudget(5, clock=lambda: now[0])
    assert [budget.take() for _ in range(7)] == [True] * 5 + [False] * 2
    now[0] = 0.4  # 0.4 s at 5/s: two more
    assert [budget.take() for _ in range(3)] == [True, True, False]
    off = RescoreBudget(0)
    assert not off.enabled and not off.take()
    with pytest.raises(ValueError):
        RescoreBudget(-1)


def test_rescore_pacer_spreads_a_clump_per_arm_and_lets_a_quiet_arm_go_at_once() -> None:
    now = [10.0]
    pacer = RescorePacer.for_rate(20, clock=lambda: now[0])  # 0.025 s apart
    # Six labels at the same instant: one now, the rest in slots 25 ms apart.
    assert [round(pacer.reserve("canary"), 6) for _ in range(6)] == [
        0.0, 0.025, 0.05, 0.075, 0.1, 0.125,
    ]  # fmt: skip
    assert pacer.reserve("stable") == 0.0  # arms are paced separately
    now[0] = 11.0  # the clump is long past: no wait, and no credit saved up either
    assert pacer.reserve("canary") == 0.0
    assert pacer.reserve("canary") == pytest.approx(0.025)
    assert RescorePacer.for_rate(0).reserve("canary") == 0.0  # pairing on label is off
    with pytest.raises(ValueError):
        RescorePacer(-0.1)
