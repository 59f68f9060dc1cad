"""Small builders for observations in the analysis unit tests."""

from __future__ import annotations

import numpy as np

from modeldeploy.operator.analysis import ArmObservations, LatencyHistogram, Observations


def arm(
    correct: int = 0,
    total: int = 0,
    *,
    latency: LatencyHistogram | None = None,
    ok: int = 0,
    error: int = 0,
    nan: int = 0,
) -> ArmObservations:
    return ArmObservations(correct, total, latency, {"ok": ok, "error": error}, nan)


def lognormal_latency(n: int, median_s: float, seed: int, sigma: float = 0.2) -> LatencyHistogram:
    rng = np.random.default_rng(seed)
    return LatencyHistogram.from_samples(median_s * np.exp(sigma * rng.standard_normal(n)))


def both(stable: ArmObservations, canary: ArmObservations, paired=None) -> Observations:
    return Observations(stable, canary, paired)
