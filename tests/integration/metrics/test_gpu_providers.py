"""GPU seconds through both providers, from a real exporter and a real Prometheus: the arm
that holds GPUs reports exactly the exporter's batch, the CPU arm reports none (absent)."""

from __future__ import annotations

import time

import pytest

from modeldeploy.operator.metrics import AnalysisTarget, NoDataError
from modeldeploy.operator.metrics.prometheus import PrometheusProvider
from modeldeploy.operator.metrics.scrape import ScrapeProvider

pytestmark = pytest.mark.slow

TARGET = AnalysisTarget("demo", stable_version="1", canary_version="2")
ALLOCATED, BUSY = 7200.0, 450.5  # the exporter's stable batch (tests/.../exporter.py)


def test_scrape_reads_gpu_seconds_per_arm_and_their_increase(exporter) -> None:
    provider = ScrapeProvider([exporter.url])
    baseline = provider.snapshot(TARGET)
    obs = baseline.observations()
    assert (obs.stable.gpu_seconds, obs.stable.gpu_busy_seconds) == (ALLOCATED, BUSY)
    assert obs.canary.gpu_seconds is None and obs.canary.gpu_busy_seconds is None
    exporter.bump()
    window = provider.snapshot(TARGET).since(baseline).observations()
    assert (window.stable.gpu_seconds, window.stable.gpu_busy_seconds) == (ALLOCATED, BUSY)
    assert window.canary.gpu_seconds is None


def test_prometheus_reads_gpu_seconds_per_arm(exporter, prometheus) -> None:
    provider = PrometheusProvider(prometheus.url)
    deadline = time.monotonic() + 30
    while True:
        try:
            obs = provider.snapshot(TARGET).observations()
            break
        except NoDataError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
    assert (obs.stable.gpu_seconds, obs.stable.gpu_busy_seconds) == (ALLOCATED, BUSY)
    assert obs.canary.gpu_seconds is None
