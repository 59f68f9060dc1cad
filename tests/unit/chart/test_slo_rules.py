"""The chart's SLO, condition and cost rules, evaluated by promtool over synthetic series.

The operator's side of the join (condition, objective, bucket and price series) is produced
by ``telemetry.exported_state`` here, so the rules are tested against the label values the
operator really exports, not against hand-written ones.
"""

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


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


PRICE_DEFAULT = 0.036  # the chart's monitoring.cost.cpuCoreHour in these tests
VALUES = {"monitoring": {**MONITORING_ON["monitoring"], "cost": {"cpuCoreHour": PRICE_DEFAULT}}}
WINDOWS = [("1h", "5m", "critical"), ("6h", "30m", "critical"), ("1d", "2h", "warning")]
WINDOWS += [("3d", "6h", "warning")]


def _run(chart: Any, tmp_path: Path, test: dict[str, Any]) -> None:
    groups = _rule_groups(render(chart, VALUES))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = _promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def _operator_series(spec: dict[str, Any], conditions: list[dict[str, Any]]) -> list[str]:
    """The operator's exported series for ml/sentiment, as promtool series names."""
    state = telemetry.exported_state({"model": {"name": "m"}, **spec}, conditions)
    out = []
    if state.availability is not None:
        out.append(
            f'{telemetry.SLO_OBJECTIVE}{{namespace="ml",deployment="sentiment",'
            f'slo="availability"}} {state.availability}'
        )
    if state.latency_le is not None:
        out.append(
            f'{telemetry.SLO_OBJECTIVE}{{namespace="ml",deployment="sentiment",slo="latency"}} '
            f"{telemetry.LATENCY_SLO_QUANTILE}"
        )
        out.append(
            f'{telemetry.SLO_LATENCY_BUCKET}{{namespace="ml",deployment="sentiment",'
            f'le="{state.latency_le}"}} 1'
        )
    if state.cpu_core_hour is not None:
        out.append(
            f'{telemetry.COST_CPU_CORE_HOUR}{{namespace="ml",deployment="sentiment"}} '
            f"{state.cpu_core_hour}"
        )
    return out


def _constant(series: list[str], minutes: int = 200) -> list[dict[str, str]]:
    return [
        {"series": s.rsplit(" ", 1)[0], "values": f"{s.rsplit(' ', 1)[1]}x{minutes}"}
        for s in series
    ]


def _burning(alert: str, at: str, windows: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [
            {
                "exp_labels": {
                    "severity": severity,
                    "long_window": long,
                    "short_window": short,
                    "namespace": "ml",
                    "deployment": "sentiment",
                }
            }
            for long, short, severity in windows
        ],
    }


ARM = 'namespace="ml",deployment="sentiment",model_version="3",role="stable"'
OTHER = 'namespace="ml",deployment="no-slo",model_version="1",role="stable"'
# 600 requests a minute; from minute 61 to 100, bad ones at `BAD` a minute, then none.
GOOD_THEN_BAD = "0x60 {bad}+{bad}x39 {total}x100"


def _expected_over_time(alert: str) -> list[dict[str, Any]]:
    """No bad requests before 60m; at 70m the slow windows see them, at 85m all four; at
    110m (10 min after they stopped) the 1h/5m pair has reset through its short window."""
    return [
        _burning(alert, "55m", []),
        _burning(alert, "70m", WINDOWS[1:]),
        _burning(alert, "85m", WINDOWS),
        _burning(alert, "110m", WINDOWS[1:]),
    ]


@needs_promtool
def test_availability_burn_alerts_fire_per_window_pair(chart, tmp_path: Path) -> None:
    """Objective 0.999: 30 errors a minute among 630 is 4.8%, 48x the budget."""
    operator = _operator_series({"slo": {"availability": 0.999}}, [])
    requests = "modeldeploy_requests_total"
    series = [
        {"series": f'{requests}{{{ARM},outcome="ok"}}', "values": "0+600x200"},
        {"series": f'{requests}{{{ARM},outcome="bad_input"}}', "values": "0+900x200"},
        {
            "series": f'{requests}{{{ARM},outcome="error"}}',
            "values": GOOD_THEN_BAD.format(bad=30, total=1200),
        },
        # no objective for this deployment: its errors never page
        {"series": f'{requests}{{{OTHER},outcome="ok"}}', "values": "0+10x200"},
        {"series": f'{requests}{{{OTHER},outcome="error"}}', "values": "0+10x200"},
    ]
    test = {
        "interval": "1m",
        "input_series": series + _constant(operator),
        "alert_rule_test": [
            *_expected_over_time("ModelDeployAvailabilityBudgetBurn"),
            _burning("ModelDeployLatencyBudgetBurn", "85m", []),
        ],
    }
    _run(chart, tmp_path, test)


@needs_promtool
def test_latency_burn_alerts_fire_per_window_pair(chart, tmp_path: Path) -> None:
    """P99 under 0.3 s: from 61m half the requests are slower, 50x the 1% budget."""
    operator = _operator_series({"slo": {"p99LatencySeconds": 0.3}}, [])
    (bucket_le,) = [s.split('le="')[1].split('"')[0] for s in operator if "bucket_info" in s]
    assert float(bucket_le) <= 0.3 < float(bucket_le) * 1.05
    duration = "modeldeploy_request_duration_seconds"
    # requests under the bound: 600 a minute, then 300 a minute from 61m to 100m
    fast = "0+600x60 36300+300x39 48000+600x100"
    series = [
        {"series": f'{duration}_bucket{{{ARM},protocol="v1",le="{bucket_le}"}}', "values": fast},
        {"series": f'{duration}_bucket{{{ARM},protocol="v1",le="+Inf"}}', "values": "0+600x200"},
        {"series": f'{duration}_count{{{ARM},protocol="v1"}}', "values": "0+600x200"},
        {"series": f'modeldeploy_requests_total{{{ARM},outcome="ok"}}', "values": "0+600x200"},
    ]
    test = {
        "interval": "1m",
        "input_series": series + _constant(operator),
        "alert_rule_test": [
            *_expected_over_time("ModelDeployLatencyBudgetBurn"),
            _burning("ModelDeployAvailabilityBudgetBurn", "85m", []),
        ],
    }
    _run(chart, tmp_path, test)


@needs_promtool
def test_inconclusive_alert_follows_the_exported_condition(chart, tmp_path: Path) -> None:
    """Held inconclusive from 11m: nothing before the chart's 30m, the alert after; a
    Progressing condition with another reason (collecting, paused) never fires it."""
    held = {"type": "Progressing", "status": "True", "reason": "HeldInconclusive"}
    (row,) = telemetry.exported_state({}, [held]).conditions
    labels = f'namespace="ml",name="sentiment",type="{row[0]}",status="{row[1]}",reason="{row[2]}"'
    other = 'namespace="ml",name="other",type="Progressing",status="True",reason="Progressing"'
    under = (
        'namespace="ml",name="sentiment",type="Underpowered",status="True",reason="NotEnoughData"'
    )
    expected = [{"exp_labels": {"severity": "warning", "namespace": "ml", "name": "sentiment"}}]
    test = {
        "interval": "1m",
        "input_series": [
            {"series": f"modeldeploy_condition{{{labels}}}", "values": "_x10 1x40 _x60"},
            {"series": f"modeldeploy_condition{{{other}}}", "values": "1x120"},
            {"series": f"modeldeploy_condition{{{under}}}", "values": "_x10 1x100"},
        ],
        "alert_rule_test": [
            {"eval_time": "35m", "alertname": "ModelDeployAnalysisInconclusive", "exp_alerts": []},
            {
                "eval_time": "45m",
                "alertname": "ModelDeployAnalysisInconclusive",
                "exp_alerts": expected,
            },
            {"eval_time": "60m", "alertname": "ModelDeployAnalysisInconclusive", "exp_alerts": []},
            {"eval_time": "65m", "alertname": "ModelDeployCanaryUnderpowered", "exp_alerts": []},
            {
                "eval_time": "75m",
                "alertname": "ModelDeployCanaryUnderpowered",
                "exp_alerts": expected,
            },
        ],
    }
    _run(chart, tmp_path, test)


@needs_promtool
def test_cost_per_1k_inferences_per_version(chart, tmp_path: Path) -> None:
    """0.01 and 0.02 CPU seconds per request at 3.6 a core-hour: 0.01 and 0.02 per 1k; a
    deployment without spec.cost takes the chart's price."""
    operator = _operator_series({"cost": {"cpuCoreHour": 3.6}}, [])
    canary = 'namespace="ml",deployment="sentiment",model_version="4",role="canary"'
    series = [
        {"series": f"modeldeploy_cpu_seconds_total{{{ARM}}}", "values": "0+6x100"},
        {"series": f"modeldeploy_cpu_seconds_total{{{canary}}}", "values": "0+12x100"},
        {"series": f"modeldeploy_cpu_seconds_total{{{OTHER}}}", "values": "0+6x100"},
    ] + [
        {"series": f'modeldeploy_requests_total{{{arm},outcome="ok"}}', "values": "0+600x100"}
        for arm in (ARM, canary, OTHER)
    ]

    def sample(deployment: str, version: str, value: float) -> dict[str, Any]:
        labels = {"namespace": "ml", "deployment": deployment, "model_version": version}
        return {
            "labels": _labels("modeldeploy:cost_per_1k_inferences:rate1h", labels),
            "value": value,
        }

    test = {
        "interval": "1m",
        "input_series": series + _constant(operator, 100),
        "promql_expr_test": [
            {
                "expr": "modeldeploy:cost_per_1k_inferences:rate1h",
                "eval_time": "90m",
                "exp_samples": [
                    sample("sentiment", "3", 0.01),
                    sample("sentiment", "4", 0.02),
                    sample("no-slo", "1", 0.01 * 1000 / 3600 * PRICE_DEFAULT),
                ],
            }
        ],
    }
    _run(chart, tmp_path, test)


def _labels(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


# -- the dashboard's executive and on-call rows ---------------------------------------------


def _board(chart: helm.Chart) -> dict[str, Any]:
    import json

    docs = render(chart, VALUES)
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in str(d)]
    (text,) = config_map["data"].values()
    return dict(json.loads(text))


def test_dashboard_opens_with_the_executive_and_on_call_rows(chart: helm.Chart) -> None:
    panels = _board(chart)["panels"]
    rows = [(p["title"].split(":")[0], p["gridPos"]["y"]) for p in panels if p["type"] == "row"]
    assert [title for title, _ in rows] == ["Executive", "On call", "Rollouts", "Capacity"]
    below: dict[str, list[str]] = {title: [] for title, _ in rows}
    for panel in panels:
        if panel["type"] != "row":
            row = [title for title, y in rows if y < panel["gridPos"]["y"]][-1]
            below[row].append(" ".join(t["expr"] for t in panel["targets"]))
    executive, on_call = " ".join(below["Executive"]), " ".join(below["On call"])
    capacity = " ".join(below["Capacity"])
    for series in (
        "modeldeploy_requests_total",
        "modeldeploy_request_duration_seconds_bucket",
        "modeldeploy_labelled_predictions_total",
        "modeldeploy:cost_per_1k_inferences:rate1h",
    ):
        assert series in executive, series
    for series in (
        "modeldeploy:slo_errors:ratio_rate1h",
        "modeldeploy:slo_slow:ratio_rate1h",
        'outcome="error"',
        "modeldeploy_nan_outputs_total",
        "modeldeploy_tokenization_failures_total",
        "modeldeploy_condition",
    ):
        assert series in on_call, series
    for series in (  # docs/metrics.md, "Where a predictor's time goes"
        "modeldeploy_forward_pass_duration_seconds_sum",
        "modeldeploy_forward_pass_duration_seconds_bucket",
        "modeldeploy_batch_size_sum",
        "modeldeploy_shed_requests_total",
    ):
        assert series in capacity, series


def test_dashboard_reads_only_rules_the_chart_records(chart: helm.Chart) -> None:
    """Recording-rule names (``modeldeploy:...``) are outside the series-name check of
    test_chart.py; each one the dashboard reads must be recorded by the PrometheusRule."""
    import re

    groups = _rule_groups(render(chart, VALUES))
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    exprs = " ".join(t["expr"] for p in _board(chart)["panels"] for t in p.get("targets", []))
    used = set(re.findall(r"\bmodeldeploy:[a-z0-9_:]+", exprs))
    assert len(used) >= 5
    assert used <= recorded, used - recorded
