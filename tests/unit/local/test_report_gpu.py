"""The demo report shows GPU seconds per 1k next to CPU, accuracy and P99, when an arm held
GPUs, and leaves a CPU run's table as it was."""

from __future__ import annotations

import math

from modeldeploy.tools.demo.report import Rollout, Sample, gpu_per_1k, markdown, step_table


def _obs(gpu: float | None) -> dict:
    arm = {"labelled_correct": 80, "labelled_total": 100, "requests": {"ok": 2000}}
    arm |= {"cpu_seconds": 4.0} | ({} if gpu is None else {"gpu_seconds": gpu})
    return {"stable": arm, "canary": dict(arm), "paired": {}}


def _table(gpu: float | None) -> list[str]:
    samples = [Sample(0, "Progressing", "1", "2", 50, 0, _obs(gpu), "continue")]
    rollout = Rollout("good candidate", "2", "tiny", steps=step_table(samples, "2"))
    text = markdown(
        title="T", facts=[], rollouts=[rollout], aliases={}, events=[], png_name="t.png"
    )
    return [
        line for line in text.splitlines() if line.startswith("| step") or line.startswith("| 0 ")
    ]


def test_gpu_per_1k_is_allocated_seconds_per_1k_requests() -> None:
    assert gpu_per_1k({"requests": {"ok": 2000}, "gpu_seconds": 3600.0}) == 1800.0
    assert math.isnan(gpu_per_1k({"requests": {"ok": 2000}, "cpu_seconds": 1.0}))


def test_gpu_columns_appear_only_when_an_arm_held_gpus() -> None:
    header, row = _table(gpu=3600.0)
    assert "| canary CPU s/1k | stable CPU s/1k | canary GPU s/1k | stable GPU s/1k |" in header
    assert "| 2.00 | 2.00 | 1800.0 | 1800.0 | continue |" in row
    header, row = _table(gpu=None)
    assert "GPU" not in header
    assert row.endswith("| 2.00 | 2.00 | continue |")
    assert header.count("|") == row.count("|")
