"""The joiner's sampled pairing draws (pure, clock injected): the share while the traffic
is within the budget, the budget's rate spread over faster traffic, never a re-score of
its own re-scores."""

from __future__ import annotations

import random

import pytest

from modeldeploy.serving.joiner.pairing import RESCORE_CE_ID_PREFIX, PairSampler, is_rescore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drawn_per_second(sampler: PairSampler, clock: Clock, per_s: int, seconds: int) -> list[int]:
    out = []
    for _ in range(seconds):
        hits = 0
        for _ in range(per_s):
            clock.now += 1.0 / per_s
            hits += sampler.draw()
        out.append(hits)
    return out


def test_within_the_budget_the_share_is_drawn() -> None:
    clock = Clock()
    sampler = PairSampler(0.2, rate_per_s=50, rng=random.Random(1), clock=clock)
    hits = drawn_per_second(sampler, clock, 100, 60)  # 20/s wanted, 50/s allowed
    assert sampler.probability == 0.2
    assert 0.18 <= sum(hits) / 6000 <= 0.22


def test_faster_traffic_is_drawn_at_the_budgets_rate() -> None:
    clock = Clock()
    sampler = PairSampler(0.5, rate_per_s=10, rng=random.Random(2), clock=clock)
    hits = drawn_per_second(sampler, clock, 200, 90)  # 100/s wanted, 10/s allowed
    settled = hits[60:]  # three time constants in: the rate estimate is within 5%
    assert 9.0 <= sum(settled) / len(settled) <= 11.5, settled
    assert abs(sampler.observed_rate - 200) < 10
    assert abs(sampler.probability - 10 / sampler.observed_rate) < 1e-12


def test_the_rate_estimate_is_not_low_in_its_first_seconds() -> None:
    """Corrected for the window's weight so far: a joiner that just started, or a canary
    that just began, does not spend the whole bucket on the first second of traffic."""
    clock = Clock()
    sampler = PairSampler(1.0, rate_per_s=10, rng=random.Random(3), clock=clock)
    hits = drawn_per_second(sampler, clock, 100, 2)
    assert abs(sampler.observed_rate - 100) < 5
    assert sum(hits) <= 2 * 10 * 1.5 + 10, hits  # the first second may draw the share


def test_off_and_bad_settings() -> None:
    assert not PairSampler(0.0).enabled and not PairSampler(0.0).draw()
    assert not PairSampler(0.5, rate_per_s=0).draw()
    assert PairSampler(0.5, rate_per_s=0).probability == 0.0
    with pytest.raises(ValueError, match="share"):
        PairSampler(1.5)
    with pytest.raises(ValueError, match="rate"):
        PairSampler(0.5, rate_per_s=-1)


def test_the_joiners_own_rescores_are_known_by_their_ce_id() -> None:
    assert is_rescore(RESCORE_CE_ID_PREFIX + "0123")
    assert not is_rescore("5f0c-client-chosen")
