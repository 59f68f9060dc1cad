"""Rules of the P99 latency check: same-window comparison, cap, bucket resolution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modeldeploy.operator.analysis import AnalysisConfig, CheckStatus, LatencyHistogram
from modeldeploy.operator.analysis.latency import (
    canary_thresholds,
    check_latency,
    quantile_bounds,
)
from modeldeploy.operator.api.analysis import MIN_P99_TOLERANCE
from modeldeploy.serving.contract.latency import latency_bucket_edges
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
    assert "% of canary requests were slower than" in result.reason
    assert "the edge at stable's observed P99), against 1.00% of stable's: more" in result.reason
    assert result.reason.endswith("3000 canary / 3000 stable requests")
    assert result.numbers["difference_lower"] > 0


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


def bucketed(samples: np.ndarray) -> LatencyHistogram:
    bounds = list(contract_buckets())
    return LatencyHistogram.from_buckets(bounds, [int((samples <= b).sum()) for b in bounds])


def test_an_identical_canary_is_proven_within_the_default_tolerance_with_the_reason() -> None:
    rng = np.random.default_rng(11)
    stable, canary = (0.02 * np.exp(0.5 * rng.standard_normal(40_000)) for _ in range(2))
    result = check_latency(
        AnalysisConfig(), both(arm(latency=bucketed(stable)), arm(latency=bucketed(canary)))
    )
    assert result.status is CheckStatus.PASS
    assert ": fewer, at 97.0% confidence" in result.reason
    assert result.numbers["canary_pass_threshold_s"] == pytest.approx(
        result.numbers["stable_edge_s"] * 1.05**2
    )


def test_a_tolerance_between_bucket_ratios_rounds_up_to_fail_and_down_to_pass() -> None:
    """Tolerance 0.1 on ratio-1.05 edges: fail only above 1.05**2, pass only below 1.05."""
    edges = np.array(latency_bucket_edges())
    fail, passing = canary_thresholds(edges, edges, 0.1)
    inner = slice(0, len(edges) - 3)
    assert (fail[inner] == np.arange(len(edges))[inner] + 2).all()
    assert (passing[inner] == np.arange(len(edges))[inner] + 1).all()
    aligned_fail, aligned_pass = canary_thresholds(edges, edges, 1.05**2 - 1)
    assert (aligned_fail[inner] == aligned_pass[inner]).all()


def test_edges_rounded_by_an_exporter_still_pair_up_one_tolerance_apart() -> None:
    """Edges rounded to the microsecond: neighbours a hair under 1.05 apart still count."""
    edges = np.round(np.array(latency_bucket_edges()), 6)
    fail, passing = canary_thresholds(edges, edges, MIN_P99_TOLERANCE)
    inner = np.arange(len(edges) - 2)
    assert (fail[inner] == inner + 1).all() and (passing[inner] == inner + 1).all()


def test_a_threshold_beyond_the_last_edge_never_fails() -> None:
    """No canary edge at or above (1 + tolerance) x e: nothing is surely that slow."""
    fail, passing = canary_thresholds([0.01, 0.02], [0.01, 0.02], 5.0)
    assert list(fail) == [2, 2] and list(passing) == [1, 1]


def test_a_stable_tail_beyond_the_last_edge_is_undecided_and_says_so() -> None:
    """Every request in +Inf: no edge can serve as a threshold, so neither pass nor fail."""
    beyond = LatencyHistogram.from_buckets([0.01, math.inf], [0, 5000])
    result = check_latency(CONFIG, both(arm(latency=beyond), arm(latency=beyond)))
    assert result.status is CheckStatus.UNDECIDED
    assert "stable P99 not yet bounded" in result.reason


def test_a_close_canary_is_undecided_with_both_ends_of_the_difference() -> None:
    rng = np.random.default_rng(12)
    stable = 0.02 * np.exp(0.5 * rng.standard_normal(3000))
    canary = 0.02 * 1.1 * np.exp(0.5 * rng.standard_normal(3000))
    result = check_latency(
        AnalysisConfig(), both(arm(latency=bucketed(stable)), arm(latency=bucketed(canary)))
    )
    assert result.status is CheckStatus.UNDECIDED
    assert "not yet separable, the difference is between" in result.reason
    assert result.numbers["difference_lower"] < 0 < result.numbers["difference_upper"]
