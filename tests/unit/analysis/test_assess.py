"""Aggregation rules: failures, deadlines, final steps, missing data, serialisation."""

from __future__ import annotations

import json

import pytest

from modeldeploy.operator.analysis import AnalysisConfig, Decision, assess
from tests.unit.analysis.helpers import arm, both, lognormal_latency

ACCURACY_ONLY = AnalysisConfig(checks=("accuracy",), accuracy_margin=0.01)


def healthy(n: int = 100_000):
    return both(arm(int(0.85 * n), n), arm(int(0.85 * n), n))


def test_any_failed_check_rolls_back_even_before_the_deadline() -> None:
    obs = both(arm(1706, 2000, ok=2000), arm(1582, 2000, ok=2000, nan=1))
    verdict = assess(AnalysisConfig(), obs, at_deadline=False, final_step=False)
    assert verdict.decision is Decision.ROLLBACK
    assert "accuracy: accuracy 0.791 vs 0.853" in verdict.reason
    assert "errors: canary produced 1 NaN" in verdict.reason


def test_all_checks_passed_advances_or_promotes_on_the_final_step() -> None:
    assert assess(ACCURACY_ONLY, healthy(), at_deadline=False, final_step=False).decision is (
        Decision.ADVANCE
    )
    assert assess(ACCURACY_ONLY, healthy(), at_deadline=False, final_step=True).decision is (
        Decision.PROMOTE
    )


def test_undecided_before_the_deadline_continues() -> None:
    verdict = assess(ACCURACY_ONLY, healthy(1000), at_deadline=False, final_step=False)
    assert verdict.decision is Decision.CONTINUE
    assert verdict.reason.startswith("collecting: accuracy:")


def test_undecided_with_enough_data_at_the_deadline_counts_as_no_regression() -> None:
    verdict = assess(ACCURACY_ONLY, healthy(1000), at_deadline=True, final_step=True)
    assert verdict.decision is Decision.PROMOTE
    assert verdict.reason.startswith("deadline reached, no regression found")


@pytest.mark.parametrize(
    ("on_inconclusive", "expected"),
    [("rollback", Decision.ROLLBACK), ("hold", Decision.INCONCLUSIVE)],
)
def test_too_little_data_at_the_deadline_follows_on_inconclusive(on_inconclusive, expected) -> None:
    config = AnalysisConfig(on_inconclusive=on_inconclusive)
    verdict = assess(config, both(arm(10, 10), arm(10, 10)), at_deadline=True, final_step=False)
    assert verdict.decision is expected
    assert "inconclusive" in verdict.reason


def test_too_little_data_before_the_deadline_continues() -> None:
    verdict = assess(AnalysisConfig(), both(arm(), arm()), at_deadline=False, final_step=False)
    assert verdict.decision is Decision.CONTINUE


def test_unreadable_metrics_are_never_a_pass() -> None:
    verdict = assess(
        AnalysisConfig(on_inconclusive="rollback"),
        None,
        at_deadline=True,
        final_step=True,
        unavailable="cannot scrape http://127.0.0.1:1/metrics",
    )
    assert verdict.decision is Decision.ROLLBACK
    assert all(c.status == "inconclusive" for c in verdict.checks)
    assert "cannot scrape" in verdict.reason
    held = assess(AnalysisConfig(on_inconclusive="hold"), None, at_deadline=True, final_step=True)
    assert held.decision is Decision.INCONCLUSIVE


def test_the_verdict_is_json_serialisable_with_the_numbers_behind_it() -> None:
    obs = both(
        arm(850, 1000, latency=lognormal_latency(2000, 0.02, 1), ok=2000),
        arm(840, 1000, latency=lognormal_latency(2000, 0.02, 2), ok=2000),
    )
    verdict = assess(AnalysisConfig(), obs, at_deadline=False, final_step=False)
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["decision"] == "continue"
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
