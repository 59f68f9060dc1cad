"""Spec parsing: one set of defaults (the models'), and errors that name the YAML field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.api.types import SpecError, parse_spec, spec_hash


def test_defaults_come_from_the_models() -> None:
    spec = parse_spec({"model": {"name": "sentiment"}})
    assert spec.model.stable_alias == "champion"
    assert spec.model.candidate_alias == "challenger"
    assert spec.runtime == "kserve-python"
    assert spec.deployment_mode == "Serverless"
    assert spec.rollout.steps == (10, 50, 100)
    assert spec.rollout.step_deadline_seconds == 3600
    assert spec.resources.gpu == 0
    # The analysis section is the analysis configuration, with its (benchmarked) defaults.
    assert spec.rollout.analysis == AnalysisConfig()
    assert spec.rollout.analysis.on_inconclusive == "hold"
    assert spec.rollout.analysis.p99_tolerance == 0.1025


def test_camel_case_yaml_becomes_snake_case_python() -> None:
    raw = {
        "model": {"name": "m", "registryUri": "http://r"},
        "resources": {"nodeSelector": {"pool": "gpu"}, "minReplicas": 2, "maxReplicas": 3},
        "rollout": {
            "stepDeadlineSeconds": 600,
            "analysis": {"accuracyMargin": 0.02, "minLabels": 50, "p99CapSeconds": 0.25},
        },
    }
    spec = parse_spec(raw)
    assert spec.model.registry_uri == "http://r"
    assert spec.resources.node_selector == {"pool": "gpu"} and spec.resources.min_replicas == 2
    assert spec.rollout.step_deadline_seconds == 600
    analysis = spec.rollout.analysis
    assert (analysis.accuracy_margin, analysis.min_labels) == (0.02, 50)
    assert analysis.p99_cap_seconds == 0.25 and analysis.confidence == 0.95


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "spec.model: Field required"),
        ({"model": {}}, "spec.model.name: Field required"),
        ({"model": {"name": "m"}, "runtime": "tf"}, "spec.runtime: Input should be"),
        ({"model": {"name": "m"}, "rollout": {"steps": [0, 100]}}, "spec.rollout.steps[0]:"),
        ({"model": {"name": "m"}, "rollout": {"steps": [50, 25, 100]}}, "strictly increasing"),
        ({"model": {"name": "m"}, "rollout": {"steps": [10, 50]}}, "last step must be 100"),
        ({"model": {"name": "m"}, "metrics": {"provider": "prometheus"}}, "spec.metrics.url"),
        ({"model": {"name": "m"}, "resources": {"gpu": 9}}, "spec.resources.gpu:"),
        ({"model": {"name": "m"}, "resources": {"cpu": "lots"}}, "spec.resources.cpu:"),
        (
            {"model": {"name": "m"}, "resources": {"minReplicas": 3, "maxReplicas": 2}},
            "spec.resources.minReplicas: 3 is more than maxReplicas 2",
        ),
        ({"model": {"name": "m", "candidateAlias": "champion"}}, "must differ"),
        ({"model": {"name": "m"}, "rollot": {}}, "spec.rollot: Extra inputs are not permitted"),
        (
            {"model": {"name": "m"}, "rollout": {"analysis": {"accuracyMargin": 2}}},
            "spec.rollout.analysis.accuracyMargin: Input should be less than or equal to 1",
        ),
        (
            {"model": {"name": "m"}, "rollout": {"analysis": {"confidence": 0.5}}},
            "spec.rollout.analysis.confidence: Input should be greater than 0.5",
        ),
        (
            {"model": {"name": "m"}, "rollout": {"analysis": {"minLabels": 0}}},
            "spec.rollout.analysis.minLabels:",
        ),
        (
            {"model": {"name": "m"}, "rollout": {"analysis": {"p99Tolerance": 0.04}}},
            "spec.rollout.analysis.p99Tolerance:",
        ),
        (
            {"model": {"name": "m"}, "rollout": {"analysis": {"checks": ["errors", "errors"]}}},
            "spec.rollout.analysis.checks: Value error, each check may appear once",
        ),
        (
            {"model": {"name": "m"}, "resources": {"tolerations": [{"operator": "In"}]}},
            "spec.resources.tolerations[0].operator:",
        ),
        # YAML keys are camelCase only: the CRD knows no other spelling.
        (
            {"model": {"name": "m"}, "rollout": {"analysis": {"min_labels": 10}}},
            "spec.rollout.analysis.min_labels: Extra inputs are not permitted",
        ),
        # Strings are not numbers, as for the API server.
        ({"model": {"name": "m"}, "rollout": {"steps": ["100"]}}, "spec.rollout.steps[0]:"),
        ({"model": {"name": "m"}, "resources": {"cpu": 2}}, "spec.resources.cpu:"),
        (None, "spec: must be an object"),
    ],
)
def test_invalid_spec_is_refused_with_the_field_named(raw: dict, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "removed",
    [
        {"feedback": {"enabled": True}},
        {"prober": {"enabled": True}},
        {"rollout": {"shadow": {"enabled": True}}},
        {"rollout": {"pairedShare": 0.5}},
        {"rollout": {"deadlineSeconds": 600}},
        {"rollout": {"onInconclusive": "hold"}},
        {"rollout": {"minLabelsPerStep": 100}},
        {"rollout": {"accuracy": {"margin": 0.01}}},
    ],
)
def test_removed_fields_are_refused_not_ignored(removed: dict) -> None:
    with pytest.raises(SpecError, match="Extra inputs are not permitted"):
        parse_spec({"model": {"name": "m"}, **removed})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"model": {"name": "m"}, "runtime": "x", "deploymentMode": "y"})
    assert [p.split(":")[0] for p in info.value.problems] == ["spec.runtime", "spec.deploymentMode"]


def test_a_bad_list_item_is_one_problem_not_two() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"model": {"name": "m"}, "rollout": {"steps": ["x"]}})
    assert len(info.value.problems) == 1


def test_spec_hash_ignores_spelled_out_defaults() -> None:
    assert spec_hash({"model": {"name": "m"}}) == spec_hash(
        {
            "model": {"name": "m", "stableAlias": "champion"},
            "runtime": "kserve-python",
            "rollout": {
                "analysis": {"minLabels": 200, "checks": ["accuracy", "latency", "errors"]}
            },
        }
    )
    assert spec_hash({"model": {"name": "m"}}) != spec_hash({"model": {"name": "n"}})
    minimal = {"model": {"name": "m"}}
    assert spec_hash(minimal) != spec_hash({**minimal, "rollout": {"analysis": {"minLabels": 201}}})


def test_an_invalid_spec_still_has_a_hash() -> None:
    assert spec_hash({"runtime": "tf"}) != spec_hash({"runtime": "onnx"})


def test_the_parsed_spec_is_immutable_and_the_analysis_config_hashable() -> None:
    spec = parse_spec({"model": {"name": "m"}})
    with pytest.raises(ValidationError):
        spec.rollout.analysis.min_labels = 1  # type: ignore[misc]
    assert hash(spec.rollout.analysis) == hash(AnalysisConfig())


def test_python_code_builds_the_config_with_snake_case_names() -> None:
    config = AnalysisConfig(accuracy_margin=0.01, min_labels=50)
    assert (config.accuracy_margin, config.min_labels, config.confidence) == (0.01, 50, 0.95)
    assert config.alpha == pytest.approx(0.05)
    assert config.replaced(on_inconclusive="hold").on_inconclusive == "hold"
    with pytest.raises(ValidationError, match="min_labels"):
        config.replaced(min_labels=0)
