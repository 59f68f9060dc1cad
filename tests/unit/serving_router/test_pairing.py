"""Rules of pairing: outcomes, label matching, item ids and the bounded score book."""

from __future__ import annotations

import pytest

from modeldeploy.serving.codecs import item_ids as predictor_item_ids
from modeldeploy.serving.router.pairing import (
    ArmPrediction,
    ScoreBook,
    item_ids,
    paired_outcome,
    pairs,
    request_of,
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
