"""A real predictor process on a CPU-only machine: no GPU series at all (absent, not zero),
and the operator's own reading of its /metrics still prices it by CPU.

The GPU side of the same process is covered with fake devices in
tests/unit/serving/test_gpu_accounting.py and runs for real only on a GPU node
(tests/integration/serving/test_gpu_node.py).
"""

from __future__ import annotations

import httpx
import pytest

from modeldeploy.operator.analysis import cost
from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.metrics.base import AnalysisTarget
from modeldeploy.operator.metrics.snapshot import arm_observations, collect
from modeldeploy.serving.contract import names
from tests.integration.serving.scrape import scrape

pytestmark = pytest.mark.slow

GPU_SERIES = {names.GPU_ALLOCATED_SECONDS, names.GPU_BUSY_SECONDS, names.GPU_DEVICES}
TARGET = AnalysisTarget("demo", stable_version="6", canary_version="7")


def _samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    return [(name, dict(labels), v) for (name, labels), v in scrape(url).items()]


def test_a_cpu_predictor_exports_no_gpu_series_and_is_priced_by_cpu(tiny_predictor) -> None:
    before = collect(_samples(tiny_predictor.url), TARGET)
    with httpx.Client(timeout=30) as client:
        for i in range(cost.MIN_REQUESTS + 20):
            client.post(tiny_predictor.v1, json={"instances": [f"review number {i}"]})
    samples = _samples(tiny_predictor.url)
    assert not {name for name, _, _ in samples} & GPU_SERIES
    after = collect(samples, TARGET)
    assert after.canary is not None and before.canary is not None
    window = after.minus(before).canary
    assert window is not None
    assert window.gpu_seconds is None and window.gpu_busy_seconds is None
    assert window.cpu_seconds is not None and window.cpu_seconds > 0
    arm = arm_observations(window, None)
    figures = cost.numbers(Observations(stable=arm, canary=arm), 0.036, 2.5)
    assert figures["canary_cpu_seconds_per_1k"] > 0
    assert figures["canary_per_1k"] == pytest.approx(
        figures["canary_cpu_seconds_per_1k"] / 3600 * 0.036, rel=1e-3
    )  # a GPU price changes nothing for an arm that holds no GPU
    assert not [k for k in figures if "gpu" in k]
