"""Aggregation rules: the checks' results to one outcome (fail, pass, pending).

The analysis has no deadlines and no steps: "enough data, no regression found" is
pending, never a pass, and unreadable metrics are pending, never a pass.
"""

from __future__ import annotations

import json

import pytest

from modeldeploy.operator.analysis import AnalysisConfig, Outcome, assess
from tests.unit.analysis.helpers import arm, both, lognormal_latency

ACCURACY_ONLY = AnalysisConfig(checks=("accuracy",), accuracy_margin=0.01)


def healthy(n: int = 100_000):
    return both(arm(int(0.85 * n), n), arm(int(0.85 * n), n))


@pytest.mark.parametrize(
    ("name", "config", "observations", "outcome", "reason_starts"),
    [
        # every check proved non-inferiority: pass
        ("proven", ACCURACY_ONLY, healthy(), Outcome.PASS, "all checks passed: accuracy:"),
        # enough labels, bounds still straddle the margin: not proof, pending
        ("undecided", ACCURACY_ONLY, healthy(1000), Outcome.PENDING, "not yet proven: accuracy:"),
        # below the minimum sample: pending
        ("too little", AnalysisConfig(), both(arm(10, 10), arm(10, 10)), Outcome.PENDING, "not"),
        ("nothing", AnalysisConfig(), both(arm(), arm()), Outcome.PENDING, "not yet proven"),
        # unreadable metrics: pending, every check inconclusive
        ("no data", AnalysisConfig(), None, Outcome.PENDING, "not yet proven"),
    ],
)
def test_outcome_table(name, config, observations, outcome, reason_starts) -> None:
    verdict = assess(config, observations)
    assert verdict.outcome is outcome, name
    assert verdict.reason.startswith(reason_starts), verdict.reason


def test_any_failed_check_fails_and_names_each_failure() -> None:
    obs = both(arm(1706, 2000, ok=2000), arm(1582, 2000, ok=2000, nan=1))
    verdict = assess(AnalysisConfig(), obs)
    assert verdict.outcome is Outcome.FAIL
    assert "accuracy: accuracy 0.791 vs 0.853" in verdict.reason
    assert "errors: canary produced 1 NaN" in verdict.reason


def test_a_failure_outweighs_passes_and_pending_checks() -> None:
    # accuracy clearly worse, latency without data (pending): still a failure
    obs = both(arm(17060, 20000), arm(15820, 20000))
    verdict = assess(AnalysisConfig(checks=("accuracy", "latency")), obs)
    assert verdict.outcome is Outcome.FAIL
    assert [c.status for c in verdict.checks] == ["fail", "inconclusive"]


def test_unreadable_metrics_say_why_and_every_check_is_inconclusive() -> None:
    verdict = assess(AnalysisConfig(), None, unavailable="cannot scrape http://127.0.0.1:1/metrics")
    assert verdict.outcome is Outcome.PENDING
    assert all(c.status == "inconclusive" for c in verdict.checks)
    assert "cannot scrape" in verdict.reason


def test_the_verdict_is_json_serialisable_with_the_numbers_behind_it() -> None:
    obs = both(
        arm(850, 1000, latency=lognormal_latency(2000, 0.02, 1), ok=2000),
        arm(840, 1000, latency=lognormal_latency(2000, 0.02, 2), ok=2000),
    )
    verdict = assess(AnalysisConfig(), obs)
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["outcome"] == "pending"
    assert {c["name"] for c in data["checks"]} == {"accuracy", "latency", "errors"}
    assert data["numbers"]["accuracy.stable_accuracy"] == 0.85
    assert data["numbers"]["latency.canary_requests"] == 2000


def test_config_rejects_nonsense_and_round_trips() -> None:
    with pytest.raises(ValueError, match="confidence"):
        AnalysisConfig(confidence=1.5)
    with pytest.raises(ValueError, match="unknown analysis settings"):
        AnalysisConfig.from_dict({"margin": 0.1})
    config = AnalysisConfig(p99_cap_seconds=0.2, checks=("latency",))
    assert AnalysisConfig.from_dict(config.to_dict()) == config
