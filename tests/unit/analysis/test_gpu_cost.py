"""GPU cost per 1k inferences: allocated seconds priced per GPU-hour, the comparison basis,
and the reason text."""

from __future__ import annotations

import pytest

from modeldeploy.operator.analysis import cost
from modeldeploy.operator.analysis.observations import ArmObservations, Observations
from modeldeploy.operator.analysis.verdict import Outcome, Verdict


def arm(
    requests: int, cpu: float | None, gpu: float | None = None, busy: float | None = None
) -> ArmObservations:
    return ArmObservations(
        requests={"ok": requests}, cpu_seconds=cpu, gpu_seconds=gpu, gpu_busy_seconds=busy
    )


def test_gpu_seconds_per_1k_are_allocated_seconds_per_request() -> None:
    gpu_arm = arm(2000, 10.0, gpu=3600.0, busy=90.0)  # 1 GPU for an hour, 2,000 requests
    assert cost.gpu_seconds_per_1k(gpu_arm) == 1800.0
    assert cost.gpu_busy_seconds_per_1k(gpu_arm) == 45.0
    assert cost.gpu_seconds_per_1k(arm(2000, 10.0)) is None  # a CPU arm: no GPU figure
    assert cost.gpu_busy_seconds_per_1k(arm(2000, 10.0)) is None
    assert cost.gpu_seconds_per_1k(arm(cost.MIN_REQUESTS - 1, 1.0, gpu=60.0)) is None


def test_money_adds_cpu_and_gpu_and_needs_a_price_for_each_resource_exported() -> None:
    assert cost.money_per_1k(7.2, 1800.0, 0.05, 3.0) == pytest.approx(
        7.2 / 3600 * 0.05 + 1800.0 / 3600 * 3.0
    )
    assert cost.money_per_1k(7.2, None, 0.05, None) == pytest.approx(0.0001)  # CPU arm
    assert cost.money_per_1k(7.2, 1800.0, 0.05, None) is None  # GPU unpriced: no figure
    assert cost.money_per_1k(None, 1800.0, None, 3.0) == pytest.approx(1.5)
    assert cost.money_per_1k(None, None, 1.0, 1.0) is None


def test_numbers_of_two_gpu_arms_compare_busy_time_not_the_traffic_split() -> None:
    """Both arms hold one GPU for the same hour; the canary at 5% traffic is billed 19x
    more per request, but per request it needs only 20% more device time."""
    stable = arm(19_000, 60.0, gpu=3600.0, busy=190.0)  # 10 busy s per 1k
    canary = arm(1_000, 4.0, gpu=3600.0, busy=12.0)  # 12 busy s per 1k
    figures = cost.numbers(Observations(stable, canary), 0.05, 4.0)
    assert figures["stable_gpu_seconds_per_1k"] == pytest.approx(189.473684, abs=1e-6)
    assert figures["canary_gpu_seconds_per_1k"] == 3600.0
    assert figures["stable_gpu_busy_seconds_per_1k"] == 10.0
    assert figures["canary_gpu_busy_seconds_per_1k"] == 12.0
    assert figures["stable_gpu_utilisation"] == pytest.approx(190 / 3600, abs=1e-4)
    assert figures["canary_relative"] == 0.2
    assert figures["canary_per_1k"] == pytest.approx(4.0 / 3600 * 0.05 + 3600.0 / 3600 * 4.0)


def test_numbers_of_cpu_arms_are_unchanged_by_a_gpu_price() -> None:
    obs = Observations(stable=arm(2000, 10.0), canary=arm(1000, 5.9))
    assert cost.numbers(obs, None, 4.0) == {
        "stable_cpu_seconds_per_1k": 5.0,
        "canary_cpu_seconds_per_1k": 5.9,
        "canary_relative": 0.18,
    }


def test_a_canary_moved_to_a_gpu_is_compared_in_money_only_when_both_are_priced() -> None:
    stable = arm(2000, 20.0)  # 10 CPU s per 1k
    canary = arm(2000, 2.0, gpu=72.0, busy=10.0)  # 1 CPU s and 36 GPU s per 1k
    priced = cost.numbers(Observations(stable, canary), 3.6, 0.36)
    assert priced["stable_per_1k"] == pytest.approx(0.01)
    assert priced["canary_per_1k"] == pytest.approx(0.001 + 0.0036)
    assert priced["canary_relative"] == pytest.approx(-0.54)
    unpriced = cost.numbers(Observations(stable, canary), 3.6, None)
    assert "canary_per_1k" not in unpriced and "canary_relative" not in unpriced


def test_a_gpu_held_but_never_busy_shows_zero_utilisation() -> None:
    idle = arm(2000, 20.0, gpu=3600.0, busy=0.0)  # e.g. an ONNX backend on a GPU node
    figures = cost.numbers(Observations(idle, idle), None, None)
    assert figures["stable_gpu_utilisation"] == 0.0
    assert "canary_relative" not in figures  # no device time to compare


@pytest.mark.parametrize(
    ("canary_busy", "noted"),
    [(12.0, True), (10.3, False), (8.0, False)],  # 20% more; 3% more (noise); cheaper
)
def test_a_costlier_gpu_canary_is_named_in_a_passing_reason(
    canary_busy: float, noted: bool
) -> None:
    stable = arm(19_000, 60.0, gpu=3600.0, busy=190.0)
    canary = arm(1_000, 4.0, gpu=3600.0, busy=canary_busy)
    verdict = cost.with_cost(
        Verdict(Outcome.PASS, "all checks passed"), Observations(stable, canary), 0.05, 4.0
    )
    assert (
        "the canary costs 20% more per 1k inferences at equal GPU utilisation" in verdict.reason
    ) is noted
    if noted:
        assert "12 vs 10 busy GPU seconds per 1k" in verdict.reason
        assert "3,600 vs 189 allocated GPU seconds per 1k" in verdict.reason
    assert verdict.outcome is Outcome.PASS  # never a gate
    assert verdict.numbers["cost.canary_gpu_seconds_per_1k"] == 3600.0


def test_a_costlier_canary_on_another_resource_names_the_money() -> None:
    stable = arm(2000, 2.0, gpu=72.0, busy=10.0)
    canary = arm(2000, 20.0)  # moved back to CPU and dearer
    verdict = cost.with_cost(Verdict(Outcome.PASS, "ok"), Observations(stable, canary), 3.6, 0.65)
    assert "costs 33% more per 1k inferences (0.01 vs 0.0075 per 1k, CPU and GPU" in verdict.reason


def test_arms_of_a_gpu_spec_that_report_no_gpu_seconds_are_not_priced_or_compared() -> None:
    """A Triton arm on a GPU node exports CPU seconds only: that is not its cost."""
    triton = Observations(stable=arm(2000, 10.0), canary=arm(1000, 5.9))
    figures = cost.numbers(triton, 0.036, 2.5, gpus_requested=True)
    assert figures == {"stable_cpu_seconds_per_1k": 5.0, "canary_cpu_seconds_per_1k": 5.9}
    verdict = cost.with_cost(Verdict(Outcome.PASS, "ok"), triton, 0.036, 2.5, gpus_requested=True)
    assert verdict.reason == "ok"
    reported = Observations(
        stable=arm(2000, 10.0, 3600.0, 20.0), canary=arm(2000, 10.0, 3600.0, 30.0)
    )
    figures = cost.numbers(reported, 0.036, 2.5, gpus_requested=True)
    assert figures["canary_relative"] == 0.5 and "canary_per_1k" in figures
