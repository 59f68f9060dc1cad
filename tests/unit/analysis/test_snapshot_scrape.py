"""Provider parsing and window deltas, fed through an injected fetcher (no network)."""

from __future__ import annotations

import json

import pytest

from modeldeploy.operator.metrics import (
    AnalysisTarget,
    InvalidMetrics,
    NoDataError,
    ProviderUnavailable,
    Snapshot,
)
from modeldeploy.operator.metrics.prometheus import snapshot_query
from modeldeploy.operator.metrics.scrape import ScrapeProvider

TARGET = AnalysisTarget("demo", "3", "4")


STABLE = 'deployment="demo",model_version="3",role="stable"'
SHADOW = 'deployment="demo",model_version="4",role="shadow"'
PAIR = 'deployment="demo",stable_version="3",canary_version="4"'


def exposition(scale: int = 1, canary: bool = True) -> str:
    """A /metrics text in the contract's names, with counts multiplied by ``scale``."""
    duration = "modeldeploy_request_duration_seconds"
    rows = [
        ("modeldeploy_requests_total", f'{STABLE},outcome="ok"', 100),
        ("modeldeploy_requests_total", f'{STABLE},outcome="error"', 1),
        ("modeldeploy_requests_total", 'deployment="other",model_version="3",role="stable"', 999),
        ("modeldeploy_labelled_predictions_total", f'{STABLE},source="feedback",correct="true"', 8),
        (
            "modeldeploy_labelled_predictions_total",
            f'{STABLE},source="feedback",correct="false"',
            2,
        ),
        (f"{duration}_bucket", f'{STABLE},protocol="v1",le="0.01"', 60),
        (f"{duration}_bucket", f'{STABLE},protocol="v1",le="+Inf"', 70),
        (f"{duration}_bucket", f'{STABLE},protocol="v2",le="0.01"', 20),
        (f"{duration}_bucket", f'{STABLE},protocol="v2",le="+Inf"', 31),
        (f"{duration}_count", f'{STABLE},protocol="v1"', 70),
        (f"{duration}_sum", f'{STABLE},protocol="v1"', 0.7),
    ]
    if canary:
        rows += [
            ("modeldeploy_requests_total", f'{SHADOW},outcome="ok"', 50),
            ("modeldeploy_nan_outputs_total", SHADOW, 1),
            (
                "modeldeploy_paired_outcomes_total",
                f'{PAIR},source="probe",outcome="stable_only"',
                5,
            ),
            (
                "modeldeploy_paired_outcomes_total",
                f'{PAIR},source="feedback",outcome="stable_only"',
                1,
            ),
            (
                "modeldeploy_paired_outcomes_total",
                'deployment="demo",stable_version="9",canary_version="4",outcome="both_wrong"',
                7,
            ),
        ]
    types = [
        "# TYPE modeldeploy_requests_total counter",
        "# TYPE modeldeploy_labelled_predictions_total counter",
        f"# TYPE {duration} histogram",
        "# TYPE modeldeploy_nan_outputs_total counter",
        "# TYPE modeldeploy_paired_outcomes_total counter",
    ]
    by_family: dict[str, list[str]] = {}
    for name, labels, value in rows:
        family = name.removesuffix("_total").removeprefix("")
        for suffix in ("_bucket", "_count", "_sum"):
            family = family.removesuffix(suffix)
        by_family.setdefault(family, []).append(f"{name}{{{labels}}} {value * scale}")
    lines: list[str] = []
    for header in types:
        family = header.split()[2].removesuffix("_total")
        lines += [header, *by_family.get(family, [])]
    return "\n".join(lines) + "\n"


def provider_for(pages: dict[str, str]) -> ScrapeProvider:
    return ScrapeProvider(list(pages), fetch=lambda url: pages[url])


def test_contract_series_map_to_arms_summing_protocols_and_sources() -> None:
    obs = provider_for({"a": exposition(), "b": exposition(2)}).snapshot(TARGET).observations()
    assert dict(obs.stable.requests) == {"ok": 300, "error": 3}  # other deployment ignored
    assert (obs.stable.labelled_correct, obs.stable.labelled_total) == (24, 30)
    assert obs.stable.latency is not None
    assert obs.stable.latency.cumulative == (240, 303)  # v1 + v2, both sources
    assert obs.canary.nan_outputs == 3 and obs.canary.requests["ok"] == 150  # shadow = canary
    assert obs.canary.latency is None  # exported no histogram: missing, not empty
    assert obs.paired is not None and obs.paired.stable_only == 18  # other pair ignored


def test_since_subtracts_the_baseline_and_survives_a_status_round_trip() -> None:
    pages = {"a": exposition(1)}
    provider = provider_for(pages)
    baseline = Snapshot.from_dict(json.loads(json.dumps(provider.snapshot(TARGET).to_dict())))
    pages["a"] = exposition(3)
    obs = provider.snapshot(TARGET).since(baseline).observations()
    assert dict(obs.stable.requests) == {"ok": 200, "error": 2}
    assert obs.stable.latency is not None and obs.stable.latency.cumulative == (160, 202)
    assert obs.paired is not None and obs.paired.stable_only == 12


def test_a_counter_that_went_down_is_a_restart_and_counts_from_zero() -> None:
    pages = {"a": exposition(5)}
    provider = provider_for(pages)
    baseline = provider.snapshot(TARGET)
    pages["a"] = exposition(2)  # the process restarted and served 2 batches since
    obs = provider.snapshot(TARGET).since(baseline).observations()
    assert dict(obs.stable.requests) == {"ok": 200, "error": 2}
    assert obs.paired is not None and obs.paired.stable_only == 12


def test_a_missing_arm_is_no_data() -> None:
    with pytest.raises(NoDataError, match="canary"):
        provider_for({"a": exposition(canary=False)}).snapshot(TARGET).observations()


def test_unreachable_or_garbage_targets_are_unavailable() -> None:
    def refuse(url: str) -> str:
        raise ConnectionRefusedError(url)

    provider = ScrapeProvider(["a"], fetch=refuse)
    assert not provider.is_online()
    with pytest.raises(ProviderUnavailable):
        provider.snapshot(TARGET)
    with pytest.raises(ProviderUnavailable):
        provider_for({"a": "modeldeploy_requests_total{{{ nonsense"}).snapshot(TARGET)


def test_promql_quotes_label_values() -> None:
    query = snapshot_query(AnalysisTarget('ns/na"me', "1", "2"))
    assert 'deployment="ns/na\\"me"' in query
    assert "process_start_time_seconds and on (job, instance)" in query


@pytest.mark.parametrize(
    ("value", "words"), [("-4", "negative"), ("NaN", "NaN"), ("+Inf", "infinite")]
)
def test_broken_counts_are_refused_naming_the_arm(value: str, words: str) -> None:
    page = exposition().replace(f'{SHADOW},outcome="ok"}} 50', f'{SHADOW},outcome="ok"}} {value}')
    with pytest.raises(InvalidMetrics, match=f"metrics for canary contain an? {words} count"):
        provider_for({"a": page}).snapshot(TARGET)


def test_a_non_monotone_histogram_increase_is_a_restart_not_an_error() -> None:
    """Every bucket grew, but by less at +Inf than below it: only a reset explains it."""
    pages = {"a": exposition(1)}
    provider = provider_for(pages)
    baseline = provider.snapshot(TARGET)
    pages["a"] = exposition(1).replace('le="0.01"} 60', 'le="0.01"} 65')
    pages["a"] = pages["a"].replace('le="+Inf"} 70', 'le="+Inf"} 71')
    obs = provider.snapshot(TARGET).since(baseline).observations()
    assert obs.stable.latency is not None and obs.stable.latency.cumulative == (85, 102)


def test_a_restart_is_seen_by_its_start_time_when_counters_grew_back() -> None:
    pages = {"a": "process_start_time_seconds 100.0\n" + exposition(1)}
    provider = provider_for(pages)
    baseline = provider.snapshot(TARGET)
    assert baseline.sources["a"].start == 100.0
    pages["a"] = "process_start_time_seconds 900.0\n" + exposition(3)
    obs = provider.snapshot(TARGET).since(baseline).observations()
    assert dict(obs.stable.requests) == {"ok": 300, "error": 3}  # all new, not 300 - 100
