"""The one-predictor bench reads rows per pass from a scrape and CPU from /proc."""

from __future__ import annotations

import os

from modeldeploy.tools.bench.serving.one import batch_totals, thread_cpu

SCRAPE = """# HELP modeldeploy_batch_size Items per model forward pass.
modeldeploy_batch_size_bucket{deployment="d",model_version="1",role="stable",le="1.0"} 3.0
modeldeploy_batch_size_count{deployment="d",model_version="1",role="stable"} 10.0
modeldeploy_batch_size_sum{deployment="d",model_version="1",role="stable"} 84.0
modeldeploy_batch_size_count{deployment="d",model_version="2",role="canary"} 2.0
modeldeploy_batch_size_sum{deployment="d",model_version="2",role="canary"} 6.0
modeldeploy_requests_total{deployment="d",model_version="1",role="stable",outcome="ok"} 99.0
"""


def test_batch_totals_add_every_series_and_nothing_else():
    assert batch_totals(SCRAPE) == (90.0, 12.0)
    assert batch_totals("") == (0.0, 0.0)


def test_thread_cpu_splits_the_main_thread_from_the_rest():
    sum(i * i for i in range(200_000))  # some CPU in this (main) thread
    cpu = thread_cpu(os.getpid())
    assert set(cpu) == {"loop", "rest"} and cpu["loop"] > 0
