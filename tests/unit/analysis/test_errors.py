"""Rules of the errors check: NaN fails at once, error rate by non-inferiority."""

from __future__ import annotations

from modeldeploy.operator.analysis import AnalysisConfig, ArmObservations, CheckStatus
from modeldeploy.operator.analysis.errors import check_errors
from tests.unit.analysis.helpers import arm, both

CONFIG = AnalysisConfig(error_margin=0.01, min_requests_for_errors=100)


def test_a_single_canary_nan_fails_immediately() -> None:
    result = check_errors(CONFIG, both(arm(ok=10), arm(ok=3, nan=1)))
    assert result.status is CheckStatus.FAIL
    assert result.reason == "canary produced 1 NaN output(s) in 3 requests"


def test_zero_requests_is_inconclusive() -> None:
    assert check_errors(CONFIG, both(arm(), arm())).status is CheckStatus.INCONCLUSIVE


def test_a_high_canary_error_rate_fails() -> None:
    result = check_errors(CONFIG, both(arm(ok=1000, error=1), arm(ok=900, error=100)))
    assert result.status is CheckStatus.FAIL
    assert result.reason.startswith("error rate 10.00% vs 0.10%, 95% bound +0.0")


def test_no_errors_anywhere_on_many_requests_passes() -> None:
    result = check_errors(CONFIG, both(arm(ok=20_000), arm(ok=20_000)))
    assert result.status is CheckStatus.PASS


def test_bad_input_is_the_clients_fault_and_not_counted() -> None:
    stable = ArmObservations(requests={"ok": 1000, "bad_input": 0})
    canary = ArmObservations(requests={"ok": 1000, "bad_input": 500})
    result = check_errors(CONFIG, both(stable, canary))
    assert result.numbers["canary_requests"] == 1000
    assert result.status is not CheckStatus.FAIL


def test_a_stable_nan_is_reported_but_does_not_fail_the_canary() -> None:
    result = check_errors(CONFIG, both(arm(ok=20_000, nan=2), arm(ok=20_000)))
    assert result.status is CheckStatus.PASS
    assert "stable produced 2 NaN" in result.reason
