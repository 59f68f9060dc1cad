"""A short soak of a real predictor: no errors, and its store stops growing once full."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.tools.bench.soak import soak
from tests.integration.serving.conftest import start_predictor

pytestmark = pytest.mark.slow

CAPACITY = 1000


def test_5k_requests_at_concurrency_32_leave_the_store_flat(tiny_checkpoint: Path, tmp_path: Path):
    predictor = start_predictor(
        tmp_path,
        tiny_checkpoint,
        ["--deployment", "soak", "--feedback-capacity", str(CAPACITY)],
        name="soak-predictor",
    )
    try:
        figures = soak(predictor.url, predictor.process.pid, requests=5000, concurrency=32)
    finally:
        predictor.process.stop()
    assert figures["errors"] == 0, figures["errors_by_kind"]
    # Full after CAPACITY requests, tombstones full after 2 x CAPACITY: from then on flat.
    full = [s for s in figures["samples"] if s["requests"] >= 2.5 * CAPACITY]
    assert len(full) >= 5
    assert {s["store_entries"] for s in full} == {CAPACITY}
    assert len({s["store_bytes"] for s in full}) == 1
    print(
        f"soak 5k: {figures['requests_per_s']} req/s, RSS {figures['rss_mib_start']} -> "
        f"{figures['rss_mib_end']} MiB (max {figures['rss_mib_max']})"
    )
