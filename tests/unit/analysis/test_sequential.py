"""The always-valid bounds keep their promise under continuous monitoring (fixed seeds).

These are behavioural checks on a few hundred quick simulated rollouts, not the benchmark:
look after every 50 labels, and the false-alarm rate must stay within the guarantee, while
a naive fixed-sample test looked at as often does not.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from modeldeploy.operator.analysis import AnalysisConfig
from modeldeploy.operator.analysis.sequential import binomial_count_bounds, mixture_radius
from modeldeploy.tools.bench import simulation


def test_a_a_false_rollbacks_stay_under_one_percent_when_checked_every_interval() -> None:
    config = AnalysisConfig()
    rng = np.random.default_rng(7)
    stable, canary = simulation._unpaired_draws(rng, 400, 0.85, 0.85)
    assert (simulation.unpaired_stops(config, stable, canary) >= 0).mean() <= 0.01
    cells = simulation.paired_cells(0.85, 0.85, 0.08)
    so, co = simulation._paired_draws(rng, 400, cells)
    assert (simulation.paired_stops(config, so, co) >= 0).mean() <= 0.01


def test_the_bound_holds_at_the_margin_itself_under_peeking() -> None:
    """At a true drop equal to the margin (the null's edge) rollbacks stay <= alpha."""
    config = AnalysisConfig(accuracy_margin=0.02)
    rng = np.random.default_rng(8)
    stable, canary = simulation._unpaired_draws(rng, 400, 0.85, 0.83)
    assert (simulation.unpaired_stops(config, stable, canary) >= 0).mean() <= config.alpha


def test_a_naive_repeated_z_test_inflates_false_alarms() -> None:
    """Why the sequential bound exists: a fixed 95% z-test checked every 50 labels."""
    rng = np.random.default_rng(9)
    stable, canary = simulation._unpaired_draws(rng, 400, 0.85, 0.85)
    n = np.arange(50, 4001, 50)[None, :]
    diff = (stable - canary) / n
    z = diff / np.sqrt(2 * 0.85 * 0.15 / n)
    naive = (z > norm.ppf(0.95)).any(axis=1).mean()
    assert naive > 0.2  # versus <= 1% above


def test_a_five_point_drop_is_caught_quickly() -> None:
    config = AnalysisConfig()
    rng = np.random.default_rng(10)
    stable, canary = simulation._unpaired_draws(rng, 200, 0.85, 0.80)
    stops = simulation.unpaired_stops(config, stable, canary)
    assert (stops >= 0).mean() >= 0.97
    assert np.median((stops + 1) * 50) <= 1400


def test_mixture_radius_shrinks_with_more_data_and_is_infinite_without() -> None:
    radii = mixture_radius(np.array([1e-2, 1e-3, 1e-4]), 0.025, 0.05)
    assert radii[0] > radii[1] > radii[2] > 0
    assert np.isinf(mixture_radius(np.inf, 0.025, 0.05))


def test_binomial_count_bounds_are_always_valid_under_peeking() -> None:
    """A Bernoulli(0.99) count leaves [lo, hi] at any of 100 looks in under 2 alpha of runs."""
    rng = np.random.default_rng(11)
    alpha = 0.05
    looks = np.arange(100, 10_001, 100)
    bounds = np.array([binomial_count_bounds(int(n), 0.99, alpha, 400.0) for n in looks])
    counts = rng.binomial(100, 0.99, size=(2000, looks.size)).cumsum(axis=1)
    escaped = ((counts < bounds[:, 0]) | (counts > bounds[:, 1])).any(axis=1).mean()
    assert escaped <= 2 * alpha
    lo, hi = binomial_count_bounds(1000, 0.99, alpha, 400.0)
    assert lo < 990 < hi


def test_one_radius_in_floats_is_the_radius_of_the_array_path() -> None:
    """Checks ask for one radius a tick (floats); simulations for arrays: same numbers."""
    variances = np.geomspace(1e-9, 10.0, 200)
    arrays = mixture_radius(variances, 0.02, 0.05)
    one_by_one = np.array([float(mixture_radius(float(v), 0.02, 0.05)) for v in variances])
    np.testing.assert_allclose(one_by_one, arrays, rtol=1e-12)
    assert math.isinf(float(mixture_radius(math.inf, 0.02, 0.05)))
    assert math.isinf(float(mixture_radius(0.0, 0.02, 0.05)))
