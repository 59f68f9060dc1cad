"""The arm-fairness benchmark's arithmetic: histogram quantiles, busy arrivals, paired tails."""

from __future__ import annotations

import pytest

from modeldeploy.tools.bench.serving.fairness import call_stats, histogram_quantiles, paired_tails


def test_quantiles_come_from_the_requests_between_two_scrapes() -> None:
    before = {0.005: 10.0, 0.010: 10.0, 0.020: 10.0, float("inf"): 10.0}
    # 100 new requests: 50 under 5 ms, 45 more under 10 ms, 5 more under 20 ms
    after = {0.005: 60.0, 0.010: 105.0, 0.020: 110.0, float("inf"): 110.0}
    assert histogram_quantiles(before, after) == {
        "n": 100.0,
        "p50_ms": 5.0,
        "p90_ms": 10.0,
        "p99_ms": 20.0,
    }


def test_a_call_that_arrives_while_another_to_its_arm_runs_is_busy() -> None:
    rows = [
        (0.000, "canary", "label", 0.010),  # alone
        (0.005, "canary", "label", 0.010),  # the first is still running: busy
        (0.100, "canary", "primary", 0.002),  # alone again
        (0.005, "stable", "paired", 0.010),  # other arm: not counted against the canary
    ]
    stats = call_stats(rows)
    assert stats["canary"]["label"]["busy_at_arrival"] == 0.5
    assert stats["canary"]["label"]["n"] == 2
    assert stats["canary"]["primary"]["busy_at_arrival"] == 0.0
    assert stats["stable"]["paired"] == {
        "n": 1,
        "p50_ms": 10.0,
        "p99_ms": 10.0,
        "busy_at_arrival": 0.0,
    }


def _pairs(latencies: list[tuple[float, float]]) -> list[tuple[float, str, str, float, str]]:
    calls = []
    for i, (stable, canary) in enumerate(latencies):
        calls.append((float(i), "stable", "primary", stable, f"r{i}"))
        calls.append((float(i), "canary", "paired", canary, f"r{i}"))
    return calls


def test_pairs_whose_tails_come_together_make_the_paired_test_sharper() -> None:
    # 1,000 requests at 10 ms on both arms but: 10 where both stalled (1 s), 10 where only
    # the canary did. Stable's P99 is in the bulk, so 1% of stable and 2% of the canary are
    # above their thresholds; the shared stalls cancel in pairs only.
    latencies = [(0.010, 0.010)] * 980 + [(1.0, 1.0)] * 10 + [(0.010, 1.0)] * 10
    result = paired_tails(_pairs(latencies))
    assert result["pairs"] == 1000
    assert 10.0 <= result["stable_edge_ms"] < 10.5
    assert result["canary_threshold_ms"] >= 1.1 * result["stable_edge_ms"]
    assert (result["only_stable_above"], result["only_canary_above"]) == (0.0, 0.01)
    assert result["both_above"] == 0.01
    assert result["z_paired"] > 1.5 * result["z_unpaired"] > 0


def test_disjoint_tails_give_pairs_no_advantage() -> None:
    # The same shares, but no request is slow on both arms (as on 2 shared cores).
    latencies = [(0.010, 0.010)] * 970 + [(1.0, 0.010)] * 10 + [(0.010, 1.0)] * 20
    result = paired_tails(_pairs(latencies))
    assert (result["only_stable_above"], result["only_canary_above"]) == (0.01, 0.02)
    assert result["both_above"] == 0.0
    assert result["z_paired"] == pytest.approx(result["z_unpaired"], rel=0.05)


def test_too_few_pairs_report_only_their_count() -> None:
    assert paired_tails(_pairs([(0.01, 0.01)] * 50)) == {"pairs": 50}
