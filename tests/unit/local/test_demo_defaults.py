"""The demo runs the product's analysis defaults: examples/local-demo.yaml has no analysis
block, and only the quick (CI) profile overrides one field, the P99 tolerance (docs/demo.md)."""

from __future__ import annotations

from pathlib import Path

from modeldeploy.operator.api.analysis import AnalysisConfig
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.tools.demo.scenario import PROFILES, QUICK_P99_TOLERANCE, Demo, merged

EXAMPLE = Path(__file__).resolve().parents[3] / "examples/local-demo.yaml"


def _analysis(profile: str, tmp_path: Path) -> AnalysisConfig:
    manifest = Demo(PROFILES[profile], tmp_path, EXAMPLE, out=lambda line: None).manifest()
    return parse_spec(manifest["spec"]).rollout.analysis


def test_the_full_demo_runs_on_the_defaults(tmp_path: Path) -> None:
    assert _analysis("full", tmp_path) == AnalysisConfig()


def test_quick_overrides_only_the_p99_tolerance(tmp_path: Path) -> None:
    quick = _analysis("quick", tmp_path)
    assert quick.p99_tolerance == QUICK_P99_TOLERANCE != AnalysisConfig().p99_tolerance
    assert quick.model_copy(update={"p99_tolerance": AnalysisConfig().p99_tolerance}) == (
        AnalysisConfig()
    )


def test_a_profile_override_merges_into_the_yamls_analysis_key_by_key() -> None:
    rollout = {"steps": [50, 100], "analysis": {"confidence": 0.9, "p99Tolerance": 0.2}}
    out = merged(rollout, {"analysis": {"p99Tolerance": 1.0}})
    assert out == {"steps": [50, 100], "analysis": {"confidence": 0.9, "p99Tolerance": 1.0}}
    assert rollout["analysis"] == {"confidence": 0.9, "p99Tolerance": 0.2}  # not changed


def test_the_full_demo_waits_as_long_as_the_spec_can_take_to_decide(tmp_path: Path) -> None:
    demo = Demo(PROFILES["full"], tmp_path, EXAMPLE, out=lambda line: None)
    rollout = parse_spec(demo.manifest()["spec"]).rollout
    assert demo.rollout_timeout_s() == len(rollout.steps) * rollout.step_deadline_seconds + 60
    quick = Demo(PROFILES["quick"], tmp_path, EXAMPLE, out=lambda line: None)
    assert quick.rollout_timeout_s() == PROFILES["quick"].rollout_timeout_s  # CI's own bound
