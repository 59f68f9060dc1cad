"""The latency check's error rates and power, by seeded simulation through the real code.

Latencies are lognormal (median 20 ms) read through the metrics contract's buckets (ratio
1.05, exact). Requests are drawn straight into buckets (multinomial, pure numpy), and the
running totals are judged at every look, as the operator does: a rollback (or a pass) at any
look counts. The vectorised ``tail_test`` is the code ``check_latency`` runs; one test checks
that the two agree window for window.

The threshold is chosen from the data (stable's observed P99 edge), so the level is shown
here, not proven: at the hardest null, a canary exactly ``1 + tolerance`` slower at every
quantile, neither a false FAIL nor a false PASS may happen in more than ``alpha`` of
rollouts (alpha spent on the step: 3.04% on the first step at confidence 0.95).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from modeldeploy.operator.analysis import (
    AnalysisConfig,
    ArmObservations,
    CheckStatus,
    LatencyHistogram,
    Observations,
)
from modeldeploy.operator.analysis.latency import check_latency, tail_test
from modeldeploy.operator.analysis.sequential import step_alpha
from modeldeploy.serving.contract.latency import latency_bucket_edges

EDGES = np.array([*latency_bucket_edges(), math.inf])
MEDIAN = 0.020
TAIL, SLOWER = 0.02, 1.25  # the top 2% of canary requests are 25% slower
CONFIG = AnalysisConfig()  # the defaults: tolerance 1.05**2 - 1, confidence 0.95
RUNS = 400


def lognormal(sigma: float, scale: float = 1.0):
    def cdf(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return ndtr(np.log(x / (MEDIAN * scale)) / sigma)

    return cdf


def slow_tail(sigma: float):
    """Stable's distribution with every request above its 98th percentile 25% slower."""
    stable = lognormal(sigma)
    start = MEDIAN * math.exp(sigma * 2.0537489)  # the 98th percentile of stable

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.where(x <= start, stable(x), np.maximum(1 - TAIL, stable(x / SLOWER)))

    return cdf


def bucket_probabilities(cdf) -> np.ndarray:
    return np.diff(np.append(cdf(EDGES[:-1]), 1.0), prepend=0.0)


def simulate(
    canary, sigma: float, requests: int, every: int, seed: int, step: int = 0, runs: int = RUNS
) -> tuple[float, float]:
    """(share failed, share passed) at some look up to ``requests`` per arm."""
    rng = np.random.default_rng(seed)
    p_s, p_c = bucket_probabilities(lognormal(sigma)), bucket_probabilities(canary)
    totals_s = np.zeros((runs, len(EDGES)), dtype=np.int64)
    totals_c = np.zeros_like(totals_s)
    failed = np.zeros(runs, dtype=bool)
    passed = np.zeros(runs, dtype=bool)
    alpha = step_alpha(CONFIG.alpha, step)
    for look in range(requests // every):
        totals_s += rng.multinomial(every, p_s, size=runs)
        totals_c += rng.multinomial(every, p_c, size=runs)
        if (look + 1) * every < CONFIG.min_requests:
            continue
        test = tail_test(
            EDGES,
            totals_s.cumsum(axis=1),
            EDGES,
            totals_c.cumsum(axis=1),
            tolerance=CONFIG.p99_tolerance,
            quantile=CONFIG.latency_quantile,
            alpha=alpha,
            weight=CONFIG.quantile_mixture_weight,
        )
        failed |= test.failed
        passed |= test.passed
    return float(failed.mean()), float(passed.mean())


def test_the_simulated_canary_has_the_regression_it_claims() -> None:
    """Guards the scenario itself: canary P99 = 1.25 x stable P99, P95 unchanged."""
    grid = np.geomspace(0.001, 1.0, 200_001)
    quantile = lambda cdf, q: grid[np.searchsorted(cdf(grid), q)]  # noqa: E731
    canary, stable = slow_tail(0.5), lognormal(0.5)
    assert abs(quantile(canary, 0.99) / quantile(stable, 0.99) - SLOWER) < 1e-3
    assert quantile(canary, 0.95) == quantile(stable, 0.95)


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_at_the_hardest_null_neither_error_exceeds_alpha(sigma: float) -> None:
    """A canary exactly 1 + tolerance slower everywhere: each edge's null holds with equality.

    A look every 100 requests up to 20,000 per arm; 1,000 rollouts, so the binomial noise on
    a true rate of 3% is about 0.5 points: the assertion leaves no room beyond alpha itself.
    """
    boundary = lognormal(sigma, 1.0 + CONFIG.p99_tolerance)
    failed, passed = simulate(boundary, sigma, 20_000, every=100, seed=7, runs=1000)
    alpha = step_alpha(CONFIG.alpha, 0)
    assert failed <= alpha
    assert passed <= alpha


@pytest.mark.parametrize(("sigma", "requests"), [(0.5, 30_000), (1.0, 100_000)])
def test_an_identical_canary_is_never_failed_and_is_proven_equal(
    sigma: float, requests: int
) -> None:
    """Proven within 30,000 requests per arm at sigma 0.5 and 100,000 at sigma 1.0 (the
    medians are about 8,000 and 30,000: bench/results.json)."""
    failed, passed = simulate(lognormal(sigma), sigma, requests, every=requests // 40, seed=3)
    assert failed <= 0.01
    assert passed >= 0.95


def test_an_identical_canary_on_a_later_step_is_never_failed() -> None:
    failed, _ = simulate(lognormal(0.5), 0.5, 10_000, every=250, seed=4, step=3)
    assert failed <= 0.01


def test_a_25_percent_tail_regression_is_caught_in_95_percent_at_10k_requests() -> None:
    """Sigma 0.5, the default tolerance, a look every 250 requests: the issue's goal."""
    failed, passed = simulate(slow_tail(0.5), 0.5, 10_000, every=250, seed=5)
    assert failed >= 0.95
    assert passed == 0.0


def test_a_25_percent_tail_regression_at_sigma_1_is_never_passed() -> None:
    """At sigma 1.0 the tail is caught in about half the rollouts at 10k (bench figures);
    what must hold is that it is never proven equal."""
    _, passed = simulate(slow_tail(1.0), 1.0, 10_000, every=250, seed=6)
    assert passed == 0.0


def test_check_latency_decides_as_the_vectorised_test_does() -> None:
    rng = np.random.default_rng(8)
    p_s = bucket_probabilities(lognormal(0.5))
    seen = set()
    for canary in (lognormal(0.5), slow_tail(0.5), lognormal(0.5, 1.05)):
        p_c = bucket_probabilities(canary)
        for n in (2_000, 6_000, 12_000):
            cum_s = rng.multinomial(n, p_s).cumsum()
            cum_c = rng.multinomial(n, p_c).cumsum()
            test = tail_test(
                EDGES,
                cum_s,
                EDGES,
                cum_c,
                tolerance=CONFIG.p99_tolerance,
                quantile=0.99,
                alpha=step_alpha(CONFIG.alpha, 0),
                weight=CONFIG.quantile_mixture_weight,
            )
            edges = tuple(EDGES.tolist())
            observations = Observations(
                ArmObservations(latency=LatencyHistogram(edges, tuple(cum_s.tolist()))),
                ArmObservations(latency=LatencyHistogram(edges, tuple(cum_c.tolist()))),
            )
            status = check_latency(CONFIG, observations).status
            expected = (
                CheckStatus.FAIL
                if test.failed
                else CheckStatus.PASS
                if test.passed
                else CheckStatus.UNDECIDED
            )
            assert status is expected
            seen.add(status)
    assert seen == {CheckStatus.FAIL, CheckStatus.PASS, CheckStatus.UNDECIDED}
