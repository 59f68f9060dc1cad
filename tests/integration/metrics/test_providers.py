"""Both providers against real processes: a prometheus_client exporter and real Prometheus.

The exporter applies a known batch of counts; the providers must report exactly those
numbers (per arm, summed over sources and protocols, other deployments ignored), and a
window after a second batch must report exactly that batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from modeldeploy.operator.analysis import LatencyHistogram, Observations, PairedCounts
from modeldeploy.operator.metrics import AnalysisTarget, NoDataError, ProviderUnavailable
from modeldeploy.operator.metrics.prometheus import PrometheusProvider
from modeldeploy.operator.metrics.scrape import ScrapeProvider
from tests.support.processes import free_port

pytestmark = pytest.mark.slow

TARGET = AnalysisTarget("demo", stable_version="1", canary_version="2")


def assert_one_batch(obs: Observations, batches: int = 1) -> None:
    """The exporter's BATCH, ``batches`` times over."""
    k = batches
    assert (obs.stable.labelled_correct, obs.stable.labelled_total) == (170 * k, 200 * k)
    assert (obs.canary.labelled_correct, obs.canary.labelled_total) == (150 * k, 200 * k)
    assert dict(obs.stable.requests) == {"ok": 1000 * k, "error": 2 * k, "bad_input": 5 * k}
    assert dict(obs.canary.requests) == {"ok": 990 * k, "error": 10 * k}
    assert (obs.stable.nan_outputs, obs.canary.nan_outputs) == (0, 1 * k)
    assert obs.paired == PairedCounts(80 * k, 12 * k, 4 * k, 4 * k)
    stable, canary = obs.stable.latency, obs.canary.latency
    assert isinstance(stable, LatencyHistogram) and isinstance(canary, LatencyHistogram)
    assert len(stable.bounds) == 55 and stable.bounds[-1] == float("inf")
    assert (stable.count, canary.count) == (1010 * k, 1000 * k)
    # every stable request at 20 ms is at or below the first bound >= 0.02
    at_20ms = next(c for b, c in zip(stable.bounds, stable.cumulative, strict=True) if b >= 0.02)
    assert at_20ms == 1000 * k
    # the label-free series (drift checks)
    assert obs.stable.drift is not None and obs.canary.drift is not None
    assert dict(obs.canary.drift.predictions) == {"negative": 400 * k, "positive": 600 * k}
    confidence = obs.canary.drift.confidence
    assert confidence is not None and confidence.count == 1000 * k
    cumulative = dict(zip(confidence.bounds, confidence.cumulative, strict=True))
    assert cumulative[0.65] == 300 * k
    assert obs.stable.drift.truncated == 3 * k
    assert obs.agreement is not None
    assert (obs.agreement.agree, obs.agreement.disagree) == (90 * k, 10 * k)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.25)


def test_scrape_reads_the_contract_series_from_a_real_exporter(exporter) -> None:
    provider = ScrapeProvider([exporter.url])
    assert provider.is_online()
    baseline = provider.snapshot(TARGET)
    assert_one_batch(baseline.observations())
    # prometheus_client's process collector: the start time that reveals a restart
    assert [s.start is not None for s in baseline.sources.values()] == [True]
    exporter.bump()
    assert_one_batch(provider.snapshot(TARGET).since(baseline).observations())


def test_scrape_treats_a_restarted_process_as_a_counter_reset(start_exporter) -> None:
    first = start_exporter()
    provider = ScrapeProvider([first.url])
    first.bump()
    baseline = provider.snapshot(TARGET)  # two batches
    first.process.stop()
    assert not provider.is_online()
    with pytest.raises(ProviderUnavailable):
        provider.snapshot(TARGET)
    second = start_exporter(first.port)  # same URL, counters start again: one batch
    assert_one_batch(provider.snapshot(TARGET).since(baseline).observations())
    # Even grown back past the old values, the new start time marks the restart.
    second.bump()
    second.bump()
    wait_for(lambda: provider.snapshot(TARGET).observations().canary.labelled_total == 600)
    restarted = provider.snapshot(TARGET)
    assert restarted.sources[first.url].start != baseline.sources[first.url].start
    assert_one_batch(restarted.since(baseline).observations(), batches=3)


def test_prometheus_reports_the_known_values_and_window_deltas(exporter, prometheus) -> None:
    provider = PrometheusProvider(prometheus.url)
    assert provider.is_online()

    def has_series() -> bool:
        try:
            provider.snapshot(TARGET).observations()
        except NoDataError:
            return False
        return True

    wait_for(has_series)
    baseline = provider.snapshot(TARGET)
    assert_one_batch(baseline.observations())
    assert [s.start is not None for s in baseline.sources.values()] == [True]
    restored = type(baseline).from_dict(baseline.to_dict())  # as kept in a resource status
    exporter.bump()
    wait_for(lambda: provider.snapshot(TARGET).observations().canary.labelled_total == 400)
    assert_one_batch(provider.snapshot(TARGET).since(restored).observations())

    # PromQL increase() over the window sees the second batch. Prometheus extrapolates by
    # about half a scrape interval at each end, so after ~6 s of samples it reads ~15% high.
    time.sleep(6)
    window = provider.window(TARGET, seconds=120)
    assert window.canary.labelled_total == pytest.approx(200, rel=0.35)
    assert window.stable.requests["ok"] == pytest.approx(1000, rel=0.35)
    assert window.paired is not None and window.paired.stable_only == pytest.approx(12, rel=0.5)
    assert window.canary.nan_outputs >= 1

    with pytest.raises(NoDataError):
        provider.snapshot(AnalysisTarget("nobody", "1", "2"))


def test_prometheus_unreachable_is_a_typed_error() -> None:
    provider = PrometheusProvider(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    assert not provider.is_online()
    with pytest.raises(ProviderUnavailable):
        provider.snapshot(TARGET)
