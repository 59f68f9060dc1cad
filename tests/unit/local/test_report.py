"""The demo report's numbers: Wilson bands, P99 from a histogram, the per-step table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from modeldeploy.tools.demo.report import (
    Rollout,
    Sample,
    cpu_per_1k,
    markdown,
    p99_ms,
    plot,
    step_table,
    wilson,
)


def test_wilson_band_contains_the_estimate_and_narrows_with_more_labels() -> None:
    p, lo, hi = wilson(80, 100)
    assert lo < p == 0.8 < hi
    _, lo2, hi2 = wilson(800, 1000)
    assert hi2 - lo2 < hi - lo


def test_wilson_of_nothing_is_nan() -> None:
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_p99_is_the_bucket_edge_where_99_percent_are_done() -> None:
    latency = {"bounds": [0.01, 0.02, 0.05, "+Inf"], "cumulative": [500, 985, 1000, 1000]}
    assert p99_ms(latency) == 50.0


def test_p99_needs_enough_requests() -> None:
    assert math.isnan(p99_ms({"bounds": [0.01, "+Inf"], "cumulative": [50, 50]}))
    assert math.isnan(p99_ms(None))


def _obs(correct: int, total: int, requests: int) -> dict:
    arm = {"labelled_correct": correct, "labelled_total": total, "requests": {"ok": requests}}
    return {"stable": arm, "canary": arm, "paired": {"both_correct": total}}


def test_step_table_takes_the_last_window_of_each_step_of_that_version() -> None:
    samples = [
        Sample(0, "Progressing", "1", "2", 50, 0, _obs(10, 20, 40), "continue"),
        Sample(5, "Progressing", "1", "2", 50, 0, _obs(150, 199, 990), "continue"),
        # the tick that advanced: the status says step 1, the window analysed was step 0
        Sample(6, "Progressing", "1", "2", 100, 1, _obs(150, 200, 1000), "advance", 0, 50),
        Sample(20, "Progressing", "1", "2", 100, 1, _obs(160, 210, 1100), "promote"),
        Sample(30, "Progressing", "1", "3", 50, 0, _obs(1, 2, 3), "continue"),
    ]
    rows = step_table(samples, "2")
    assert [(r["step"], r["weight"], r["canary_labels"], r["decision"]) for r in rows] == [
        (0, 50, 200, "advance"),
        (1, 100, 210, "promote"),
    ]
    assert rows[1]["seconds"] == 14 and rows[0]["pairs"] == 200
    assert rows[0]["canary_requests"] == 1000


def test_cpu_per_1k_of_a_window() -> None:
    assert cpu_per_1k({"requests": {"ok": 900, "bad_input": 100}, "cpu_seconds": 2.5}) == 2.5
    assert math.isnan(cpu_per_1k({"requests": {"ok": 1000}}))  # no CPU series
    assert math.isnan(cpu_per_1k({"requests": {"ok": 10}, "cpu_seconds": 1.0}))  # too few
    samples = [
        Sample(0, "Progressing", "1", "2", 50, 0, _obs(150, 200, 1000), "continue"),
    ]
    samples[0].observations["canary"] = {  # type: ignore[index]
        **samples[0].observations["canary"],  # type: ignore[index]
        "cpu_seconds": 3.0,
    }
    (row,) = step_table(samples, "2")
    assert row["canary_cpu_per_1k"] == 3.0 and math.isnan(row["stable_cpu_per_1k"])


@pytest.mark.slow  # matplotlib's first import takes seconds
def test_markdown_and_png_are_written(tmp_path: Path) -> None:
    samples = [
        Sample(float(t), "Progressing", "1", "2", 50, 0, _obs(t, 2 * t + 1, 10 * t))
        for t in range(1, 30)
    ]
    png = plot(samples, [(10.0, "v2 published", "tab:gray")], tmp_path / "t.png", "title")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    rollout = Rollout("good candidate", "2", "tiny", "Promoted", "all checks passed", 30.0)
    text = markdown(
        title="T", facts=[("k", "v")], rollouts=[rollout], aliases={"champion": "2"},
        events=[], png_name="t.png",
    )  # fmt: skip
    assert "| good candidate | 2 | `tiny` | **Promoted** |" in text and "![timeline](t.png)" in text
