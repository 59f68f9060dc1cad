"""`modeldeploy local`: manifests, refusing an invalid spec before anything runs, status."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.operator.api.types import SpecError
from modeldeploy.operator.local.cli import format_status, load_manifest
from modeldeploy.operator.local.runner import LocalOperator
from modeldeploy.operator.local.state import StateDir

ROOT = Path(__file__).resolve().parents[3]


def test_the_demo_example_runs_the_default_analysis() -> None:
    """docs/demo.md ("The knobs"): no analysis block; margin, confidence, minimums, pairing,
    inconclusive and the P99 tolerance are the product's defaults."""
    from modeldeploy.operator.analysis.config import AnalysisConfig
    from modeldeploy.operator.api.types import parse_spec

    manifest = load_manifest(ROOT / "examples/local-demo.yaml")
    assert "analysis" not in manifest["spec"]["rollout"]
    spec = parse_spec(manifest["spec"])
    assert spec.rollout.analysis == AnalysisConfig()
    assert spec.rollout.steps[-1] == 100 and spec.metrics.provider == "scrape"


def test_a_file_without_exactly_one_modeldeployment_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("kind: ModelDeployment\n---\nkind: ModelDeployment\n")
    with pytest.raises(ValueError, match="exactly one"):
        load_manifest(path)


def test_an_invalid_spec_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    op = LocalOperator(StateDir(tmp_path / "state"), out=lambda line: None)
    bad = {"kind": "ModelDeployment", "metadata": {"name": "s"},
           "spec": {"model": {"name": "m"}, "rollout": {"steps": [60, 30]}}}  # fmt: skip
    with pytest.raises(SpecError, match="strictly increasing"):
        op.apply(bad)
    assert not (tmp_path / "state" / "state.json").exists()


def test_registry_uri_flag_overrides_the_yaml_and_is_recorded(tmp_path: Path) -> None:
    op = LocalOperator(StateDir(tmp_path), registry_uri="http://127.0.0.1:9", out=print)
    op.apply(load_manifest(ROOT / "examples/local-demo.yaml"))
    saved = StateDir(tmp_path).load()
    assert saved["spec"]["model"]["registryUri"] == "http://127.0.0.1:9"
    assert saved["metadata"]["generation"] == 1 and op.target().registry_uri.endswith(":9")


def test_status_text_names_phase_versions_and_history() -> None:
    text = format_status(
        {
            "metadata": {"name": "s"},
            "spec": {"model": {"name": "m"}},
            "status": {
                "phase": "Progressing",
                "stable": {"version": "1"},
                "canary": {"version": "2", "weight": 50, "step": 0},
                "history": [{"version": "0", "outcome": "RolledBack", "reason": "accuracy"}],
            },
        }
    )
    assert "PHASE    Progressing" in text and "CANARY   2  weight 50%" in text
    assert "v0 RolledBack: accuracy" in text


def test_status_shows_the_outcome_the_decision_and_the_step_timing() -> None:
    last = {
        "decision": "continue",
        "reason": "not yet proven: accuracy: 120 labels",
        "expectedDecisionSeconds": 900,
        "secondsLeft": 300,
    }
    status = {"phase": "Progressing", "lastAnalysis": last}
    text = format_status({"metadata": {"name": "s"}, "spec": {}, "status": status})
    assert "ANALYSIS continue: not yet proven" in text
    assert "TIMING   decision expected in ~900 s; 300 s left before the step's deadline" in text
    never = format_status({"status": {"lastAnalysis": {**last, "expectedDecisionSeconds": 10**9}}})
    assert "never at the current rates" in never
