"""The drift alert: its own rule group, evaluated by promtool over synthetic gauges."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.unit.chart.test_chart import (
    MONITORING_ON,
    _promtool,
    _rule_groups,
    chart,  # noqa: F401 - the module-scoped fixture
    needs_promtool,
    only,
    render,
)


def test_the_drift_alert_has_its_own_group(chart) -> None:  # noqa: F811
    groups = only(render(chart, MONITORING_ON), "PrometheusRule")["spec"]["groups"]
    (drift,) = [g for g in groups if g["name"] == "modeldeploy.drift"]
    assert [r["alert"] for r in drift["rules"]] == ["ModelDeployDriftFromReference"]


@needs_promtool
def test_the_drift_alert_fires_only_on_a_lasting_proven_shift(chart, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"groups": _rule_groups(render(chart, MONITORING_ON))})
    )
    labels = 'namespace="ml",name="sentiment",model_version="3"'
    lower = "modeldeploy_drift_shift_lower_bound_ratio"
    expected = {
        "severity": "warning",
        "namespace": "ml",
        "name": "sentiment",
        "model_version": "3",
        "signal": "predictions",
    }
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # predictions: bound 0 for 10m, then 0.08 (above 0.05) from 10m on
                    {
                        "series": f'{lower}{{{labels},signal="predictions"}}',
                        "values": "0x9 0.08x60",
                    },
                    # confidence: a short blip above the limit never lasts 30m
                    {
                        "series": f'{lower}{{{labels},signal="confidence"}}',
                        "values": "0x9 0.2x10 0x50",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "30m",
                        "alertname": "ModelDeployDriftFromReference",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "45m",
                        "alertname": "ModelDeployDriftFromReference",
                        "exp_alerts": [{"exp_labels": expected}],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = _promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
