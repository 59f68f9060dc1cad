"""The drift benchmark's code paths, small: the suite itself runs in `make bench`."""

from __future__ import annotations

import numpy as np
import pytest

from modeldeploy.tools.bench import drift as bench


def test_simulated_scenarios_run_and_report_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "RUNS", 40)
    monkeypatch.setattr(bench, "A_A_HORIZON", 1000)
    out = bench.simulated(lambda message: None)
    paired = out["shift_5_points_paired_flips_5pct"]
    assert paired["runs"] == 40 and paired["flagged_share"] >= 0.8
    assert out["identical_unpaired_2_classes"]["flagged_share"] == 0.0


def scored(name: str, label: np.ndarray, confidence: np.ndarray) -> bench.Scored:
    n = label.size
    tokens = np.full(n, 20)
    return bench.Scored(name, label, confidence, tokens, np.zeros(n, bool), ("neg", "pos"))


def test_a_less_sure_canary_is_flagged_before_its_labels_could_fail_it() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, size=800)
    good = scored("good", truth.copy(), np.full(800, 0.97))
    flips = rng.random(800) < 0.2
    worse = scored("bad", np.where(flips, 1 - truth, truth), np.full(800, 0.62))
    out = bench.demo_rollouts(good, worse, truth, runs=3, horizon=600, look_every=100, seed=1)
    assert out["drift_confidence"]["flagged_share"] == 1.0
    assert out["any_drift"]["median_requests"] == 200.0
    same = bench.demo_rollouts(good, good, truth, runs=3, horizon=600, look_every=100, seed=2)
    assert same["any_drift"]["flagged_share"] == 0.0
