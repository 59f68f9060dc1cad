"""Rules of the traffic split and its run-time updates."""

from __future__ import annotations

import random

import pytest

from modeldeploy.serving.router.split import (
    Split,
    also_score_on_stable,
    both_arms_order,
    choose_role,
)


@pytest.mark.parametrize("canary", [0, 10, 50, 90, 100])
def test_canary_share_of_primary_traffic_follows_the_weight(canary: float) -> None:
    rng = random.Random(7)
    n = 20_000
    hits = sum(choose_role(Split(canary=canary), rng) == "canary" for _ in range(n))
    assert abs(hits / n - canary / 100) < 0.01


def test_only_canary_requests_are_paired_and_at_the_paired_share() -> None:
    rng = random.Random(3)
    split = Split(canary=50, paired_share=30)
    assert not any(also_score_on_stable(split, "stable", rng) for _ in range(1000))
    paired = sum(also_score_on_stable(split, "canary", rng) for _ in range(10_000))
    assert abs(paired / 10_000 - 0.30) < 0.02


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"canary": 25}, (75.0, 25.0, 5.0)),
        ({"stable": 60}, (60.0, 40.0, 5.0)),
        ({"stable": 10, "canary": 90}, (10.0, 90.0, 5.0)),
        ({"paired_share": 50}, (90.0, 10.0, 50.0)),
    ],
)
def test_update_accepts_either_weight_and_the_paired_share(
    body: dict[str, float], expected: tuple[float, float, float]
) -> None:
    new = Split(canary=10, paired_share=5).updated(body)
    assert (new.stable, new.canary, new.paired_share) == expected


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {"canary": 101},
        {"canary": -1},
        {"canary": "25"},
        {"canary": True},
        {"stable": 50, "canary": 40},
        {"weight": 5},
    ],
)
def test_update_rejects_invalid_bodies(body: object) -> None:
    with pytest.raises(ValueError):
        Split().updated(body)


def test_score_both_calls_both_arms_in_an_order_drawn_per_request() -> None:
    rng = random.Random(5)
    split = Split(canary=10)
    orders = [tuple(both_arms_order(split, choose_role(split, rng), rng)) for _ in range(4000)]
    assert set(orders) == {("stable", "canary"), ("canary", "stable")}
    # Either arm goes first half the time, whatever the weight.
    assert abs(orders.count(("stable", "canary")) / 4000 - 0.5) < 0.03


def test_score_both_leaves_a_canary_at_weight_zero_out_of_the_stream() -> None:
    rng = random.Random(5)
    assert {tuple(both_arms_order(Split(canary=0), "stable", rng)) for _ in range(50)} == {
        ("stable",)
    }
