"""The per-pass cost model: a least-squares line over the passes served, in token slots."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from modeldeploy.serving.passcost import PassCostModel


def _feed(model: PassCostModel, fixed: float, per_slot: float, noise: float = 0.0) -> None:
    rng = np.random.default_rng(0)
    for rows, width in itertools.product((1, 2, 4, 8, 16, 32), (8, 16, 32, 64)):
        for _ in range(3):
            jitter = 1 + noise * rng.standard_normal()
            model.observe(rows, width, (fixed + per_slot * rows * width) * jitter)


@pytest.mark.parametrize(("fixed", "per_slot"), [(0.002, 2e-5), (0.010, 1e-5), (0.0, 3e-5)])
def test_it_recovers_the_overhead_of_a_linear_cost(fixed, per_slot):
    model = PassCostModel(prior_overhead_tokens=96)
    _feed(model, fixed, per_slot)
    assert model.overhead_tokens() == pytest.approx(fixed / per_slot, abs=1)


def test_noise_moves_the_estimate_little():
    model = PassCostModel(prior_overhead_tokens=96)
    _feed(model, 0.005, 1e-5, noise=0.05)
    assert 350 <= model.overhead_tokens() <= 650  # 500 without noise


def test_the_prior_holds_until_enough_varied_passes_are_seen():
    model = PassCostModel(prior_overhead_tokens=96, min_passes=32)
    for _ in range(31):
        model.observe(4, 16, 0.01)
        model.observe(16, 32, 0.02)
    assert model.passes == 62 and model.overhead_tokens() != 96  # varied: fitted
    few = PassCostModel(prior_overhead_tokens=96, min_passes=32)
    for _ in range(31):
        few.observe(16, 32, 0.02)
    assert few.overhead_tokens() == 96  # too few
    same = PassCostModel(prior_overhead_tokens=96, min_passes=4)
    for _ in range(50):
        same.observe(16, 32, 0.02)
    assert same.fit() is None and same.overhead_tokens() == 96  # no spread: no slope


def test_a_flat_or_falling_line_keeps_the_prior_and_bad_samples_are_ignored():
    model = PassCostModel(prior_overhead_tokens=96, min_passes=4)
    for rows in (1, 2, 4, 8, 16) * 4:
        model.observe(rows, 32, 0.05 - 0.001 * rows)  # larger passes faster: noise
    assert model.overhead_tokens() == 96
    model = PassCostModel(prior_overhead_tokens=96, min_passes=4)
    for value in (float("nan"), float("inf"), -1.0, 0.0):
        model.observe(8, 32, value)
    model.observe(0, 32, 0.1)
    assert model.passes == 0


def test_the_overhead_is_capped():
    model = PassCostModel(prior_overhead_tokens=96, max_overhead_tokens=1000)
    _feed(model, 1.0, 1e-7)
    assert model.overhead_tokens() == 1000


def test_old_passes_fade_so_a_change_of_regime_is_followed():
    model = PassCostModel(prior_overhead_tokens=96, halflife_passes=50)
    _feed(model, 0.010, 1e-5)  # 1000 slots
    for _ in range(10):
        _feed(model, 0.001, 1e-5)  # 100 slots, 720 passes later
    assert model.overhead_tokens() == pytest.approx(100, abs=10)


def test_describe_says_what_the_planner_uses():
    model = PassCostModel(prior_overhead_tokens=96)
    assert model.describe() == "no usable fit after 0 passes; overhead 96 token slots"
    _feed(model, 0.002, 2e-5)
    assert model.describe().endswith("overhead 100 token slots")


def test_a_few_passes_slowed_by_other_work_move_the_estimate_little():
    model = PassCostModel(prior_overhead_tokens=96)
    _feed(model, 0.005, 1e-5)  # 500 slots
    for rows in (1, 2, 4, 8, 16):
        model.observe(rows, 32, 10 * (0.005 + 1e-5 * rows * 32))  # descheduled passes
    assert 400 <= model.overhead_tokens() <= 600


def test_large_passes_that_cost_more_than_linearly_do_not_sink_the_intercept():
    """Attention makes big passes superlinear; the fixed cost must still show."""
    model = PassCostModel(prior_overhead_tokens=96)
    for rows, width, _ in itertools.product((1, 2, 4, 8, 16, 32), (16, 32, 64), (1, 2)):
        slots = rows * width
        model.observe(rows, width, 0.010 + 5e-5 * slots + 2e-8 * slots * slots)
    assert model.overhead_tokens() >= 120  # 135; plain least squares gives 45 (small: 200)
