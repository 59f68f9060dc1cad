"""The serving benchmark runs end to end (quick plan) and writes a complete summary.

The quick plan serves the tiny checkpoint with a few requests, so its figures mean
nothing; this checks the measurement code and the results' shape, not performance.
"""

from __future__ import annotations

import json
import math

import pytest

from modeldeploy.tools.bench.serving.__main__ import main
from modeldeploy.tools.bench.serving.readme import render
from modeldeploy.tools.bench.serving.run import CONCURRENCY, GOALS

pytestmark = pytest.mark.slow

SUMMARY_KEYS = {
    "speedup_c16",
    "fraction_of_ceiling_c16",
    "p99_ratio_c16",
    "overhead_c1_ms",
    "accuracy_delta_points",
    "cold_start_s",
    "vs_triton_c16",
    "c64_over_c16",
}


@pytest.mark.long
def test_quick_bench_measures_every_system_and_merges_a_summary(tmp_path):
    output = tmp_path / "results.json"
    output.write_text(json.dumps({"analysis": {"kept": True}}))
    # Under a key of its own, as a run on a second kind of CPU is kept (``serving_avx2``).
    assert main(["--quick", "--output", str(output), "--key", "serving_quick"]) == 0
    merged = json.loads(output.read_text())
    assert merged["analysis"] == {"kept": True}  # other suites' figures survive
    assert "serving" not in merged
    figures = merged["serving_quick"]["figures"]
    assert figures["quick"] is True
    summary = figures["summary"]
    assert set(summary) >= SUMMARY_KEYS and set(summary["met"]) == set(GOALS)
    for key in SUMMARY_KEYS - {"vs_triton_c16"}:
        assert isinstance(summary[key], float | int) and math.isfinite(summary[key]), key
    assert summary["best_predictor"] in ("predictor_torch", "predictor_onnx")
    for name in ("baseline_pipeline", "predictor_torch", "predictor_onnx"):
        runs = figures["systems"][name]["runs"]
        assert set(runs) == {str(c) for c in CONCURRENCY}
        assert all(r["errors"] == 0 and r["throughput_rps"] > 0 for r in runs.values())
    for name in ("predictor_torch", "predictor_onnx"):  # measured next to the ceiling
        (paired,) = figures["systems"][name]["paired"]
        assert paired["fraction"] > 0 and paired["ceiling_sentences_per_s"] > 0
        before, after = paired["ceiling_before_after"]  # the ceiling on both sides
        assert before > 0 and after > 0
        assert paired["ceiling_sentences_per_s"] == pytest.approx((before + after) / 2, abs=0.06)
        expected = paired["served_rps"] / paired["ceiling_sentences_per_s"]
        # The file keeps three decimals: a small fraction's rounding is absolute, not relative.
        assert paired["fraction"] == pytest.approx(expected, rel=2e-3, abs=6e-4)
        assert paired["served_c1_p50_ms"] > 0 and paired["overhead_c1_ms"] is not None
        assert paired["served_c64_rps"] > 0  # c=64 right after c=16, in the same round
        ratio = paired["served_c64_rps"] / paired["served_rps"]
        assert paired["c64_over_c16"] == pytest.approx(ratio, rel=2e-3, abs=6e-4)
        # on a process of its own, whose c=16 cycle is split into the pass and the gap
        assert paired["round"] == 0
        assert (tmp_path / "serving-logs" / f"{name}-round0.log").is_file()
        assert paired["served_rows_per_pass"] >= 1 and paired["served_pass_ms"] > 0
        assert paired["served_gap_ms"] is not None
        # a naive baseline of the round's own, driven at c=16 right after the predictor
        assert (tmp_path / "serving-logs" / f"baseline-for-{name}-round0.log").is_file()
        assert paired["baseline_c16_rps"] > 0 and paired["baseline_c16_p99_ms"] > 0
        speedup = paired["served_rps"] / paired["baseline_c16_rps"]
        assert paired["speedup_c16"] == pytest.approx(speedup, rel=2e-3, abs=6e-4)
    assert summary["fraction_paired_rounds"]  # the headline fraction is the paired one
    assert summary["paired_rounds_on_fresh_processes"] is True
    assert summary["speedup_c16_paired_rounds"] and summary["p99_ratio_c16_paired_rounds"]
    assert {"torch-packed", "torch"} <= set(figures["ceiling"])  # both layouts
    triton = figures["systems"]["triton"]
    assert "runs" in triton or triton["status"] == "failed"  # a failure is reported, not hidden
    assert (summary["vs_triton_c16"] is None) == ("runs" not in triton)
    ceiling = figures["ceiling"]
    assert {"torch", "onnx", "onnx-int8"} <= set(ceiling)
    assert ceiling["torch"]["admitted"] and ceiling["torch"]["accuracy_delta_points"] == 0
    for runtime in ("torch", "onnx"):
        assert figures["cold_start"][runtime]["median_s"] > 0
    assert (tmp_path / "serving-logs" / "results.json").is_file()
    section = render(merged, "serving_quick")  # the README's section comes from the file
    assert all(f"`{key}`" in section for key in SUMMARY_KEYS)
    assert "Paired rounds of the best predictor (each on a predictor process of its own)" in section
