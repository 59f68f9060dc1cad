"""The arm-fairness benchmark's arithmetic: histogram quantiles and busy arrivals."""

from __future__ import annotations

from modeldeploy.tools.bench.serving.fairness import call_stats, histogram_quantiles


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
