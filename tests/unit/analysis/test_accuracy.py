"""Rules of the accuracy check (unpaired and paired non-inferiority)."""

from __future__ import annotations

import pytest

from modeldeploy.operator.analysis import AnalysisConfig, CheckStatus, PairedCounts
from modeldeploy.operator.analysis.accuracy import check_accuracy
from tests.unit.analysis.helpers import arm, both

CONFIG = AnalysisConfig(accuracy_margin=0.01, min_labels=200)


def test_fewer_labels_than_the_minimum_is_inconclusive_even_when_terrible() -> None:
    result = check_accuracy(CONFIG, both(arm(199, 199), arm(0, 199)))
    assert result.status is CheckStatus.INCONCLUSIVE
    assert "need 200 per arm" in result.reason


def test_zero_labels_is_inconclusive() -> None:
    assert check_accuracy(CONFIG, both(arm(), arm())).status is CheckStatus.INCONCLUSIVE


def test_a_large_drop_fails_with_the_numbers_in_the_reason() -> None:
    result = check_accuracy(CONFIG, both(arm(1706, 2000), arm(1582, 2000)))
    assert result.status is CheckStatus.FAIL
    assert result.reason.startswith("accuracy 0.791 vs 0.853, 95% bound -0.0")
    assert "below margin -0.010, 2000 labels per arm" in result.reason
    assert result.numbers["difference_upper"] < -0.01


def test_a_small_difference_on_few_labels_is_undecided() -> None:
    result = check_accuracy(CONFIG, both(arm(170, 200), arm(166, 200)))
    assert result.status is CheckStatus.UNDECIDED
    assert "straddle margin" in result.reason


def test_equal_accuracy_on_many_labels_proves_non_inferiority() -> None:
    result = check_accuracy(CONFIG, both(arm(85_000, 100_000), arm(85_000, 100_000)))
    assert result.status is CheckStatus.PASS
    assert "non-inferior" in result.reason


def test_all_correct_in_both_arms_has_a_finite_bound_and_never_fails() -> None:
    result = check_accuracy(CONFIG, both(arm(300, 300), arm(300, 300)))
    assert result.status in (CheckStatus.UNDECIDED, CheckStatus.PASS)
    assert result.numbers["difference_upper"] < 1


def test_unequal_label_counts_are_named_per_arm() -> None:
    result = check_accuracy(CONFIG, both(arm(850, 1000), arm(400, 500)))
    assert "500 canary / 1000 stable labels" in result.reason


def test_paired_counts_are_used_when_there_are_enough_pairs() -> None:
    # 5-point drop, low discordance: the paired test is sure where the unpaired is not
    paired = PairedCounts(both_correct=330, stable_only=22, canary_only=2, both_wrong=46)
    obs = both(arm(352, 400), arm(332, 400), paired)
    result = check_accuracy(CONFIG, obs)
    assert result.numbers["test"] == "paired"
    assert result.status is CheckStatus.FAIL
    assert "400 paired labels (24 discordant)" in result.reason
    unpaired = check_accuracy(AnalysisConfig(accuracy_margin=0.01, paired="unpaired"), obs)
    assert unpaired.status is CheckStatus.UNDECIDED


def test_too_few_pairs_falls_back_to_unpaired_in_auto_mode() -> None:
    obs = both(arm(850, 1000), arm(850, 1000), PairedCounts(10, 1, 1, 2))
    assert check_accuracy(CONFIG, obs).numbers["test"] == "unpaired"


def test_forced_paired_mode_without_pairs_is_inconclusive() -> None:
    config = AnalysisConfig(paired="paired")
    result = check_accuracy(config, both(arm(850, 1000), arm(850, 1000)))
    assert result.status is CheckStatus.INCONCLUSIVE


@pytest.mark.parametrize("margin", [0.0, 0.02])
def test_the_margin_moves_the_failure_line(margin: float) -> None:
    # a 2.5-point drop on 10,000 labels fails at margin 0 but not at a 2-point margin
    config = AnalysisConfig(accuracy_margin=margin)
    status = check_accuracy(config, both(arm(8500, 10_000), arm(8250, 10_000))).status
    assert (status is CheckStatus.FAIL) == (margin == 0.0)


def test_reason_never_prints_a_bound_equal_to_the_margin() -> None:
    from modeldeploy.operator.analysis.verdict import distinct

    assert distinct(-0.0304, -0.03) == ("-0.0304", "-0.0300")
    assert distinct(-0.0412, -0.01) == ("-0.041", "-0.010")
    assert distinct(0.0031, 0.01, signed=False) == ("0.003", "0.010")


def test_counts_that_cannot_be_counts_are_refused_not_judged() -> None:
    from modeldeploy.operator.analysis import ArmObservations
    from modeldeploy.operator.analysis.verdict import judge

    with pytest.raises(ValueError, match="paired outcomes"):
        PairedCounts(both_correct=10, stable_only=-3, canary_only=0, both_wrong=0)
    with pytest.raises(ValueError, match="request counts"):
        ArmObservations(requests={"ok": float("nan")})
    # an interval with a NaN end is neither pass nor fail, and never "no regression found"
    assert judge(float("nan"), 0.1, 0.01) is CheckStatus.INCONCLUSIVE


def test_auto_mode_uses_pairs_and_the_unpaired_rest_together() -> None:
    # 400 pairs with a clear drop, plus 3,600 unpaired labels per arm showing the same
    paired = PairedCounts(both_correct=330, stable_only=22, canary_only=2, both_wrong=46)
    obs = both(arm(352 + 3060, 4000), arm(332 + 2880, 4000), paired)
    result = check_accuracy(CONFIG, obs)
    assert result.numbers["test"] == "combined"
    assert result.status is CheckStatus.FAIL
    assert "400 paired labels (24 discordant) + 3600 unpaired labels per arm" in result.reason
    only_pairs = check_accuracy(AnalysisConfig(accuracy_margin=0.01, paired="paired"), obs)
    width = result.numbers["difference_upper"] - result.numbers["difference_lower"]
    paired_width = only_pairs.numbers["difference_upper"] - only_pairs.numbers["difference_lower"]
    assert width < paired_width
