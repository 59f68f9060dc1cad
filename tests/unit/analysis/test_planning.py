"""The step planner: the sample each check needs at its margin, and the time to get it."""

from __future__ import annotations

import math

import numpy as np

from modeldeploy.operator.analysis import AnalysisConfig, assess
from modeldeploy.operator.analysis.planning import _GRID, plan, samples_for_margin
from modeldeploy.operator.analysis.sequential import mixture_radius
from tests.unit.analysis.helpers import arm, both

ACCURACY = AnalysisConfig(checks=("accuracy",), accuracy_margin=0.02, min_labels=10)


def test_the_needed_sample_is_where_the_radius_reaches_the_margin() -> None:
    variance = 2 * 0.85 * 0.15
    n = samples_for_margin(variance, 0.02, ACCURACY, ACCURACY.accuracy_mixture_scale)
    scale, alpha = ACCURACY.accuracy_mixture_scale, ACCURACY.alpha

    def radius(k: float) -> float:
        return float(mixture_radius(variance / k, scale, alpha))

    assert radius(n) <= 0.02 < radius(0.95 * n)


def test_an_equally_good_canary_passes_once_it_has_the_planned_sample() -> None:
    small = both(arm(85, 100), arm(85, 100))
    needed = plan(ACCURACY, small, 10.0).checks["accuracy"].needed
    at = lambda n: both(arm(round(0.85 * n), n), arm(round(0.85 * n), n))  # noqa: E731
    assert assess(ACCURACY, at(needed)).outcome == "pass"
    assert assess(ACCURACY, at(needed // 2)).outcome == "pending"


def test_time_is_the_missing_sample_over_the_rate_of_the_slowest_check() -> None:
    config = AnalysisConfig(checks=("accuracy", "latency"), min_requests=5000, min_labels=10)
    obs = both(arm(850, 1000), arm(850, 1000))  # 1000 labels in 100 s, no latency at all
    result = plan(config, obs, 100.0)
    acc = result.checks["accuracy"]
    assert acc.per_second == 10.0
    assert math.isclose(acc.seconds, (acc.needed - 1000) / 10.0)
    assert math.isinf(result.checks["latency"].seconds)  # no requests arrive: never
    assert math.isinf(result.seconds)
    assert result.to_dict()["latency"]["seconds"] is None


def test_a_sample_already_big_enough_needs_no_more_time() -> None:
    obs = both(arm(850_000, 1_000_000), arm(850_000, 1_000_000))
    assert plan(ACCURACY, obs, 100.0).seconds == 0.0


def test_paired_counts_plan_on_the_discordance_rate() -> None:
    config = AnalysisConfig(checks=("accuracy",), accuracy_margin=0.02, paired="auto")
    from modeldeploy.operator.analysis.observations import Observations, PairedCounts

    rare = Observations(arm(), arm(), PairedCounts(950, 25, 25, 0))
    often = Observations(arm(), arm(), PairedCounts(800, 100, 100, 0))
    fewer = plan(config, rare, 10.0).checks["accuracy"].needed
    more = plan(config, often, 10.0).checks["accuracy"].needed
    assert fewer < more  # models that mostly agree need fewer pairs


def test_the_shortcut_finds_the_same_grid_point_as_a_search_of_the_whole_grid() -> None:
    """``samples_for_margin`` checks two grid points near ``v / V*`` instead of ~600 radii;
    it must give what the search of every grid point gives."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        variance, margin = 10 ** rng.uniform(-6, 0.5), 10 ** rng.uniform(-3.5, -0.5)
        scale = 10 ** rng.uniform(-3, -0.5)
        radius = mixture_radius(variance / _GRID, scale, ACCURACY.alpha)
        ok = np.nonzero(radius <= margin)[0]
        whole = int(_GRID[ok[0]]) if ok.size else int(_GRID[-1])
        assert samples_for_margin(variance, margin, ACCURACY, scale) == whole
