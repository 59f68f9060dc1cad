"""The chart's GPU cost rules and ModelDeployGpuIdle, evaluated by promtool over synthetic
series; the price series come from ``telemetry.exported_state`` as the operator exports them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from modeldeploy.operator import telemetry
from tests.unit.chart.test_chart import (
    CHART,
    MONITORING_ON,
    _promtool,
    _rule_groups,
    needs_promtool,
    render,
)

GPU_DEFAULT = 1.8  # the chart's monitoring.cost.gpuHour in these tests
CPU_DEFAULT = 0.036
COST = {"cpuCoreHour": CPU_DEFAULT, "gpuHour": GPU_DEFAULT}
VALUES = {"monitoring": {**MONITORING_ON["monitoring"], "cost": COST}}
GPU_ARM = 'namespace="ml",deployment="sentiment",model_version="3",role="stable"'
CPU_ARM = 'namespace="ml",deployment="sentiment",model_version="4",role="canary"'
DEFAULT_ARM = 'namespace="ml",deployment="no-spec-cost",model_version="1",role="stable"'


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def _run(chart: Any, tmp_path: Path, values: dict[str, Any], test: dict[str, Any]) -> None:
    groups = _rule_groups(render(chart, values))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = _promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def _prices(cost: dict[str, float]) -> list[dict[str, str]]:
    """The operator's price series for ml/sentiment (spec.cost = ``cost``), 200 minutes."""
    state = telemetry.exported_state({"model": {"name": "m"}, "cost": cost}, [])
    labels = '{namespace="ml",deployment="sentiment"}'
    out = []
    if state.cpu_core_hour is not None:
        out.append(
            {
                "series": telemetry.COST_CPU_CORE_HOUR + labels,
                "values": f"{state.cpu_core_hour}x200",
            }
        )
    if state.gpu_hour is not None:
        out.append({"series": telemetry.COST_GPU_HOUR + labels, "values": f"{state.gpu_hour}x200"})
    return out


def _series(busy_per_minute: float = 6.0) -> list[dict[str, str]]:
    """600 requests a minute per arm. The GPU arm holds 2 GPUs (120 GPU s a minute) and
    computes ``busy_per_minute`` of them; every arm spends 6 CPU s a minute."""
    out = [
        {"series": f'modeldeploy_requests_total{{{arm},outcome="ok"}}', "values": "0+600x200"}
        for arm in (GPU_ARM, CPU_ARM, DEFAULT_ARM)
    ]
    out += [
        {"series": f"modeldeploy_cpu_seconds_total{{{arm}}}", "values": "0+6x200"}
        for arm in (GPU_ARM, CPU_ARM, DEFAULT_ARM)
    ]
    for arm in (GPU_ARM, DEFAULT_ARM):
        out.append(
            {"series": f"modeldeploy_gpu_allocated_seconds_total{{{arm}}}", "values": "0+120x200"}
        )
        out.append(
            {
                "series": f"modeldeploy_gpu_busy_seconds_total{{{arm}}}",
                "values": f"0+{busy_per_minute}x200",
            }
        )
    return out


def _sample(name: str, deployment: str, version: str, value: float) -> dict[str, Any]:
    labels = {"namespace": "ml", "deployment": deployment, "model_version": version}
    text = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return {"labels": text, "value": value}


def _micro(deployment: str, version: str, value: float) -> dict[str, Any]:
    """A sample of ``MICRO``: millionths, rounded, so float sums compare exactly."""
    return _sample("", deployment, version, round(value * 1e6))


COST_RULE = "modeldeploy:cost_per_1k_inferences:rate1h"
MICRO = f"round({COST_RULE} * 1e6)"


@needs_promtool
def test_cost_per_1k_adds_allocated_gpu_seconds_priced_per_gpu_hour(chart, tmp_path: Path) -> None:
    """0.2 allocated GPU s and 0.01 CPU s per request. At 3.6 a GPU-hour and 0.36 a core-hour
    (spec.cost): 0.2 + 0.001 per 1k; the CPU version of the same deployment: 0.001 only; a
    deployment without spec.cost takes both chart prices."""
    test = {
        "interval": "1m",
        "input_series": _series() + _prices({"cpuCoreHour": 0.36, "gpuHour": 3.6}),
        "promql_expr_test": [
            {
                "expr": "modeldeploy:gpu_seconds_per_request:ratio_rate1h",
                "eval_time": "90m",
                "exp_samples": [
                    _sample("modeldeploy:gpu_seconds_per_request:ratio_rate1h", d, v, 0.2)
                    for d, v in (("sentiment", "3"), ("no-spec-cost", "1"))
                ],
            },
            {
                "expr": MICRO,
                "eval_time": "90m",
                "exp_samples": [
                    _micro("sentiment", "3", 0.2 + 0.001),
                    _micro("sentiment", "4", 0.001),
                    _micro("no-spec-cost", "1", (0.2 * GPU_DEFAULT + 0.01 * CPU_DEFAULT) / 3.6),
                ],
            },
        ],
    }
    _run(chart, tmp_path, VALUES, test)


@needs_promtool
def test_a_gpu_version_without_a_gpu_price_has_no_cost_figure(chart, tmp_path: Path) -> None:
    """CPU alone would understate a GPU version by orders of magnitude: no figure at all."""
    values = {"monitoring": {**MONITORING_ON["monitoring"], "cost": {"cpuCoreHour": CPU_DEFAULT}}}
    test = {
        "interval": "1m",
        "input_series": _series() + _prices({"cpuCoreHour": 0.36}),
        "promql_expr_test": [
            {
                "expr": MICRO,
                "eval_time": "90m",
                "exp_samples": [_micro("sentiment", "4", 0.001)],
            }
        ],
    }
    _run(chart, tmp_path, values, test)


@needs_promtool
def test_gpus_held_but_idle_raise_model_deploy_gpu_idle(chart, tmp_path: Path) -> None:
    """3 busy s of 120 allocated a minute is 2.5% (under 5%); 3h of it fires the alert."""
    busy = "modeldeploy:gpu_busy:ratio_rate1h"
    idle = {
        "namespace": "ml",
        "model_version": "3",
        "deployment": "sentiment",
        "severity": "warning",
    }
    test = {
        "interval": "1m",
        "input_series": _series(busy_per_minute=3.0) + _prices(COST),
        "promql_expr_test": [
            {
                "expr": busy,
                "eval_time": "90m",
                "exp_samples": [
                    _sample(busy, d, v, 0.025)
                    for d, v in (("sentiment", "3"), ("no-spec-cost", "1"))
                ],
            }
        ],
        "alert_rule_test": [
            {"eval_time": "2h", "alertname": "ModelDeployGpuIdle", "exp_alerts": []},
            {
                "eval_time": "195m",
                "alertname": "ModelDeployGpuIdle",
                "exp_alerts": [
                    {"exp_labels": idle},
                    {"exp_labels": {**idle, "deployment": "no-spec-cost", "model_version": "1"}},
                ],
            },
        ],
    }
    _run(chart, tmp_path, VALUES, test)


@needs_promtool
def test_busy_gpus_raise_nothing(chart, tmp_path: Path) -> None:
    test = {
        "interval": "1m",
        "input_series": _series(busy_per_minute=60.0) + _prices(COST),
        "alert_rule_test": [
            {"eval_time": "195m", "alertname": "ModelDeployGpuIdle", "exp_alerts": []}
        ],
    }
    _run(chart, tmp_path, VALUES, test)


def test_the_executive_rows_cost_panel_plots_gpu_cost_from_recorded_rules(chart) -> None:
    import json

    docs = render(chart, VALUES)
    config = next(d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in str(d))
    board = json.loads(next(iter(config["data"].values())))
    panel = next(
        p for p in board["panels"] if p.get("title") == "Cost per 1k inferences per version"
    )
    exprs = " ".join(t["expr"] for t in panel["targets"])
    recorded = {r["record"] for g in _rule_groups(docs) for r in g["rules"] if "record" in r}
    for rule in (
        COST_RULE,
        "modeldeploy:gpu_seconds_per_request:ratio_rate1h",
        "modeldeploy:gpu_busy:ratio_rate1h",
    ):
        assert rule in exprs and rule in recorded, rule
