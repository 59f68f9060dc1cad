"""Triton at the predictor's precision: what export accepts, and what the benchmark picks."""

from __future__ import annotations

import pytest

from modeldeploy.serving.triton.config import python_model_config
from modeldeploy.serving.triton.export import ExportError, export_repository
from modeldeploy.tools.bench.serving.readme import NAMES
from modeldeploy.tools.bench.serving.run import TRITON_BF16, TRITON_FP32, triton_setup


def test_bf16_is_a_torch_parameter_and_fp32_configs_read_as_before() -> None:
    fp32 = python_model_config("m", 2, runtime="torch")
    bf16 = python_model_config("m", 2, runtime="torch", precision="bf16")
    assert "precision" not in fp32  # a repository exported before still takes new versions
    added = [line for line in bf16.splitlines() if line not in fp32.splitlines()]
    assert added == ['parameters: { key: "precision" value: { string_value: "bf16" } }']
    assert [line for line in fp32.splitlines() if line not in bf16.splitlines()] == []


@pytest.mark.parametrize(
    ("runtime", "target", "precision", "why"),
    [
        ("onnx", "python", "bf16", "needs target 'python' with runtime 'torch'"),
        ("torch", "onnxruntime", "bf16", "needs target 'python' with runtime 'torch'"),
        ("torch", "python", "fp16", "unknown precision 'fp16'"),
    ],
)
def test_export_refuses_a_precision_its_runtime_cannot_compute(
    tmp_path, runtime: str, target: str, precision: str, why: str
) -> None:
    with pytest.raises(ExportError, match=why):
        export_repository(
            tmp_path / "no-checkpoint", tmp_path / "repo", "m", 1,
            target=target, runtime=runtime, precision=precision,
        )  # fmt: skip
    assert not (tmp_path / "repo").exists()


def _predictor(rps: float, precision: str) -> dict:
    return {"runs": {"16": {"throughput_rps": rps}}, "serving": {"precision": precision}}


def test_the_benchmark_runs_triton_at_the_fastest_predictors_precision() -> None:
    bf16_fastest = {
        "predictor_torch": _predictor(600, "bf16"),
        "predictor_onnx": _predictor(300, "fp32"),
    }
    fp32_fastest = {
        "predictor_torch": _predictor(200, "fp32"),
        "predictor_onnx": _predictor(230, "fp32"),
    }
    assert triton_setup(bf16_fastest) == TRITON_BF16
    assert triton_setup(fp32_fastest) == TRITON_FP32
    assert triton_setup({"baseline_pipeline": {"runs": {}}}) == TRITON_FP32
    assert (TRITON_BF16.runtime, TRITON_BF16.precision) == ("torch", "bf16")
    # A file written before the label was recorded renders as it always did.
    assert TRITON_FP32.label == NAMES["triton"]
