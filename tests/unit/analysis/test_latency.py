"""Rules of the P99 latency check: same-window comparison, cap, bucket resolution."""

from __future__ import annotations

import math

import numpy as np

from modeldeploy.operator.analysis import AnalysisConfig, CheckStatus, LatencyHistogram
from modeldeploy.operator.analysis.latency import check_latency, quantile_bounds
from modeldeploy.tools.bench.simulation import contract_buckets
from tests.unit.analysis.helpers import arm, both, lognormal_latency

CONFIG = AnalysisConfig(min_requests=1000)


def test_missing_latency_is_inconclusive() -> None:
    result = check_latency(CONFIG, both(arm(), arm(latency=lognormal_latency(2000, 0.02, 1))))
    assert result.status is CheckStatus.INCONCLUSIVE
    assert "stable" in result.reason


def test_an_empty_histogram_is_inconclusive() -> None:
    empty = LatencyHistogram.from_buckets([0.01, math.inf], [0, 0])
    result = check_latency(CONFIG, both(arm(latency=empty), arm(latency=empty)))
    assert result.status is CheckStatus.INCONCLUSIVE
    assert "need 1000 per arm" in result.reason


def test_fewer_requests_than_the_minimum_is_inconclusive_even_when_slow() -> None:
    obs = both(
        arm(latency=lognormal_latency(999, 0.02, 1)), arm(latency=lognormal_latency(999, 0.2, 2))
    )
    assert check_latency(CONFIG, obs).status is CheckStatus.INCONCLUSIVE


def test_a_30_percent_slower_canary_fails_with_both_ranges_in_the_reason() -> None:
    obs = both(
        arm(latency=lognormal_latency(3000, 0.020, 1)),
        arm(latency=lognormal_latency(3000, 0.026, 2)),
    )
    result = check_latency(CONFIG, obs)
    assert result.status is CheckStatus.FAIL
    assert result.reason.startswith("canary P99 in [")
    assert "exceeds stable P99" in result.reason and "3000 canary / 3000 stable" in result.reason


def test_the_same_distribution_does_not_fail() -> None:
    obs = both(
        arm(latency=lognormal_latency(5000, 0.02, 1)), arm(latency=lognormal_latency(5000, 0.02, 2))
    )
    assert check_latency(CONFIG, obs).status is not CheckStatus.FAIL


def test_tolerance_lets_a_small_regression_through() -> None:
    obs = both(
        arm(latency=lognormal_latency(20_000, 0.020, 1)),
        arm(latency=lognormal_latency(20_000, 0.021, 2)),
    )
    assert check_latency(AnalysisConfig(p99_tolerance=0.25), obs).status is CheckStatus.PASS


def test_the_absolute_cap_fails_even_when_stable_is_as_slow() -> None:
    config = AnalysisConfig(p99_cap_seconds=0.025)
    obs = both(
        arm(latency=lognormal_latency(3000, 0.02, 1)), arm(latency=lognormal_latency(3000, 0.02, 2))
    )
    result = check_latency(config, obs)
    assert result.status is CheckStatus.FAIL
    assert "over the cap 25.0 ms" in result.reason


def test_histogram_bounds_are_bucket_edges_around_the_sample_bounds() -> None:
    """Bucketing only widens the bounds: they bracket the exact ones from raw samples."""
    exact = lognormal_latency(4000, 0.02, 3)
    bounds = list(contract_buckets())
    values = np.repeat(exact.bounds, np.diff([0, *exact.cumulative]))
    counts = [int((values <= b).sum()) for b in bounds]
    bucketed = LatencyHistogram.from_buckets(bounds, counts)
    lo_exact, hi_exact = quantile_bounds(exact, 0.99, 0.025, 400.0)
    lo_bucket, hi_bucket = quantile_bounds(bucketed, 0.99, 0.025, 400.0)
    assert lo_bucket <= lo_exact <= hi_exact <= hi_bucket
    assert lo_bucket in bounds and hi_bucket in bounds
    assert hi_bucket / lo_bucket < 1.6  # still informative at 4,000 requests


def test_too_few_tail_requests_leave_the_upper_bound_open() -> None:
    lower, upper = quantile_bounds(lognormal_latency(50, 0.02, 4), 0.99, 0.025, 400.0)
    assert math.isinf(upper) and lower < 0.05
