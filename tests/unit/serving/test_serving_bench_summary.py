"""The serving benchmark's summary compares the server with the ceiling it could reach."""

from __future__ import annotations

import pytest

from modeldeploy.tools.bench.serving.run import summarize


def _runs(c1: float, c16: float, c64: float, p99: float = 100.0) -> dict:
    return {
        str(c): {"throughput_rps": t, "p50_ms": 10.0, "p99_ms": p99}
        for c, t in ((1, c1), (16, c16), (64, c64))
    }


CEILING = {
    "torch": {"admitted": True, "best_sentences_per_s": 300.0, "c16_sentences_per_s": 250.0,
              "batch1_p50_ms": 8.0, "accuracy_delta_points": 0.0},
    "torch-bf16": {"admitted": True, "best_sentences_per_s": 480.0, "c16_sentences_per_s": 400.0,
                   "batch1_p50_ms": 9.0, "accuracy_delta_points": 0.11},
    "onnx-int8": {"admitted": False, "best_sentences_per_s": 900.0, "c16_sentences_per_s": 800.0,
                  "batch1_p50_ms": 3.0, "accuracy_delta_points": -0.6},
}  # fmt: skip


def test_the_fraction_of_ceiling_divides_by_the_best_admitted_figure_at_batches_of_16():
    systems = {
        "baseline_pipeline": {"runs": _runs(50, 100, 100, p99=500.0)},
        "predictor_torch": {"runs": _runs(80, 360, 380), "serving": {"precision": "bf16"}},
        "predictor_onnx": {"runs": _runs(90, 200, 210)},
    }
    summary = summarize(CEILING, systems, {"goal_s": 3.0, "torch": {"median_s": 2.0}})
    assert summary["ceiling_used"] == "torch-bf16"  # INT8 is faster but not admitted
    assert summary["ceiling_c16_sentences_per_s"] == 400.0
    assert summary["fraction_of_ceiling_c16"] == pytest.approx(0.9)
    assert summary["fraction_of_best_any_batch_ceiling_c16"] == pytest.approx(0.75)
    assert summary["speedup_c16"] == pytest.approx(3.6)
    assert summary["overhead_c1_ms"] == pytest.approx(1.0)  # bf16's own batch-1 P50
    assert summary["met"]["fraction_of_ceiling_c16"] is True
    assert summary["met"]["c64_over_c16"] is True and summary["met"]["vs_triton_c16"] is None


def test_a_packed_predictor_is_compared_with_its_own_layouts_batch_1_latency():
    ceiling = {
        **CEILING,
        "torch-bf16-packed": {"admitted": True, "best_sentences_per_s": 700.0,
                              "c16_sentences_per_s": 380.0, "batch1_p50_ms": 6.0,
                              "accuracy_delta_points": 0.11},
    }  # fmt: skip
    serving = {"precision": "bf16", "layout": "packed rows of 64 tokens"}
    systems = {
        "baseline_pipeline": {"runs": _runs(50, 100, 100, p99=500.0)},
        "predictor_torch": {"runs": _runs(80, 340, 380), "serving": serving},
    }
    summary = summarize(ceiling, systems, {"goal_s": 3.0, "torch": {"median_s": 2.0}})
    # the ceiling is the best layout at batches of 16 (padded, sorted by length), while the
    # batch-1 overhead is measured against the layout the predictor serves
    assert summary["ceiling_used"] == "torch-bf16"
    assert summary["fraction_of_ceiling_c16"] == pytest.approx(0.85)
    assert summary["overhead_c1_ms"] == pytest.approx(4.0)
    assert summary["fraction_of_best_any_batch_ceiling_c16"] == pytest.approx(340 / 700, abs=1e-3)


def test_paired_rounds_set_the_fraction_when_there_are_any():
    """The one-shot ratio divides figures measured minutes apart; paired rounds (ceiling,
    then server, back to back) cancel the machine's drift, and their median is reported."""
    paired = [{"fraction": f, "overhead_c1_ms": o} for f, o in ((0.7, 3.0), (0.9, 1.0), (0.8, 1.5))]
    systems = {
        "baseline_pipeline": {"runs": _runs(50, 100, 100, p99=500.0)},
        "predictor_torch": {
            "runs": _runs(80, 300, 380),
            "serving": {"precision": "bf16"},
            "paired": paired,
        },
    }
    summary = summarize(CEILING, systems, {"goal_s": 3.0, "torch": {"median_s": 2.0}})
    assert summary["fraction_of_ceiling_c16"] == pytest.approx(0.8)
    assert summary["fraction_of_ceiling_c16_unpaired"] == pytest.approx(0.75)
    assert summary["fraction_paired_rounds"] == [0.7, 0.9, 0.8]
    assert summary["met"]["fraction_of_ceiling_c16"] is False
    assert summary["overhead_c1_ms"] == pytest.approx(1.5)  # the median of the rounds
    assert summary["overhead_c1_ms_unpaired"] == pytest.approx(1.0)  # 10 ms vs bf16's 9
    # rounds from before c=64 was paired: the one-shot ratio stands
    assert summary["c64_over_c16"] == pytest.approx(380 / 300, abs=1e-3)
    assert summary["c64_over_c16_paired_rounds"] == []


def test_paired_rounds_set_c64_over_c16_when_they_measured_it():
    """At the compute limit c=16 and c=64 serve about the same, so measured minutes apart
    the machine's drift decides the goal; rounds measure them back to back."""
    paired = [
        {"fraction": 0.9, "overhead_c1_ms": 1.0, "c64_over_c16": ratio}
        for ratio in (0.98, 1.04, 1.02)
    ]
    systems = {
        "baseline_pipeline": {"runs": _runs(50, 100, 100, p99=500.0)},
        "predictor_torch": {"runs": _runs(80, 300, 280), "paired": paired},
    }
    summary = summarize(CEILING, systems, {"goal_s": 3.0, "torch": {"median_s": 2.0}})
    assert summary["c64_over_c16"] == pytest.approx(1.02)
    assert summary["c64_over_c16_unpaired"] == pytest.approx(280 / 300, abs=1e-3)
    assert summary["c64_over_c16_paired_rounds"] == [0.98, 1.04, 1.02]
    assert summary["met"]["c64_over_c16"] is True


def test_a_packed_onnx_predictor_is_compared_with_the_packed_graphs_batch_1_latency(tmp_path):
    """The ONNX predictor's layout comes from its log, as torch's does: a packed ONNX
    predictor's overhead is taken against ``onnx-packed``, not the padded graph."""
    from modeldeploy.tools.bench.serving.run import _served_as

    log = tmp_path / "predictor_onnx.log"
    log.write_text(
        "checking onnx accuracy against torch on the validation split\n"
        "2026-12-03 INFO onnx layout: packed rows of 64 tokens\n"
    )
    served = _served_as(log, "onnx")
    assert served == {
        "runtime": "onnx", "device": "cpu", "precision": "fp32",
        "layout": "packed rows of 64 tokens",
    }  # fmt: skip
    log.write_text("torch on cpu at fp32 (no bf16)\ntorch layout: padded batches\n")
    assert _served_as(log, "torch")["layout"] == "padded batches"
    ceiling = {
        **CEILING,
        "onnx": {"admitted": True, "best_sentences_per_s": 240.0, "c16_sentences_per_s": 230.0,
                 "batch1_p50_ms": 7.0, "accuracy_delta_points": 0.0},
        "onnx-packed": {"admitted": True, "best_sentences_per_s": 235.0,
                        "c16_sentences_per_s": 225.0, "batch1_p50_ms": 7.5,
                        "accuracy_delta_points": 0.0},
    }  # fmt: skip
    systems = {
        "baseline_pipeline": {"runs": _runs(50, 100, 100, p99=500.0)},
        "predictor_torch": {"runs": _runs(80, 300, 320), "serving": {"precision": "bf16"}},
        "predictor_onnx": {"runs": _runs(110, 380, 390), "serving": served},
    }
    summary = summarize(ceiling, systems, {"goal_s": 3.0, "torch": {"median_s": 2.0}})
    assert summary["best_predictor"] == "predictor_onnx"
    assert summary["overhead_c1_ms"] == pytest.approx(10.0 - 7.5)


def test_paired_rounds_set_the_speedup_and_p99_ratio_when_they_measured_the_baseline():
    """The naive baseline's speed drifts with the machine's as the predictor's does: rounds
    that measured it right after the predictor decide ``speedup_c16`` and ``p99_ratio_c16``;
    the one-shot ratios stay beside them."""
    paired = [
        {"fraction": 0.9, "overhead_c1_ms": 1.0, "speedup_c16": s, "p99_ratio_c16": p}
        for s, p in ((5.2, 0.31), (4.6, 0.35), (4.9, 0.29))
    ]
    systems = {
        "baseline_pipeline": {"runs": _runs(50, 100, 100, p99=500.0)},
        "predictor_torch": {"runs": _runs(80, 360, 380, p99=100.0), "paired": paired},
    }
    summary = summarize(CEILING, systems, {"goal_s": 3.0, "torch": {"median_s": 2.0}})
    assert summary["speedup_c16"] == pytest.approx(4.9)
    assert summary["speedup_c16_unpaired"] == pytest.approx(3.6)
    assert summary["speedup_c16_paired_rounds"] == [5.2, 4.6, 4.9]
    assert summary["p99_ratio_c16"] == pytest.approx(0.31)
    assert summary["p99_ratio_c16_unpaired"] == pytest.approx(0.2)
    assert summary["met"]["speedup_c16"] is True and summary["met"]["p99_ratio_c16"] is True
    # rounds without the baseline (older files): the one-shot ratios stand
    for r in paired:
        del r["speedup_c16"], r["p99_ratio_c16"]
    summary = summarize(CEILING, systems, {"goal_s": 3.0, "torch": {"median_s": 2.0}})
    assert summary["speedup_c16"] == pytest.approx(3.6)
    assert summary["p99_ratio_c16"] == pytest.approx(0.2)
    assert summary["speedup_c16_paired_rounds"] == []
