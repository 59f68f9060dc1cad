"""Spec parsing: defaults from the schema, and errors that name the field."""

from __future__ import annotations

import pytest

from modeldeploy.operator.api.types import SpecError, parse_spec, spec_hash


def test_defaults_come_from_the_schema() -> None:
    spec = parse_spec({"model": {"name": "sentiment"}})
    assert spec.model.stable_alias == "champion"
    assert spec.model.candidate_alias == "challenger"
    assert spec.runtime == "kserve-python"
    assert spec.deployment_mode == "Serverless"
    assert spec.rollout.steps == (10, 25, 50, 100)
    assert spec.rollout.on_inconclusive == "rollback"
    assert spec.resources.gpu == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "spec: 'model' is a required property"),
        ({"model": {}}, "spec.model: 'name' is a required property"),
        ({"model": {"name": "m"}, "runtime": "tf"}, "spec.runtime: 'tf' is not one of"),
        ({"model": {"name": "m"}, "rollout": {"steps": [0, 100]}}, "spec.rollout.steps[0]"),
        ({"model": {"name": "m"}, "rollout": {"steps": [50, 25, 100]}}, "strictly increasing"),
        ({"model": {"name": "m"}, "rollout": {"steps": [10, 50]}}, "last step must be 100"),
        ({"model": {"name": "m"}, "metrics": {"provider": "prometheus"}}, "spec.metrics.url"),
        ({"model": {"name": "m"}, "resources": {"gpu": 9}}, "spec.resources.gpu"),
        ({"model": {"name": "m"}, "resources": {"cpu": "lots"}}, "spec.resources.cpu"),
        (
            {"model": {"name": "m"}, "resources": {"minReplicas": 3, "maxReplicas": 2}},
            "minReplicas",
        ),
        ({"model": {"name": "m", "candidateAlias": "champion"}}, "must differ"),
        ({"model": {"name": "m"}, "rollot": {}}, "Additional properties are not allowed"),
        ({"model": {"name": "m"}, "rollout": {"accuracy": {"confidence": 2}}}, "confidence"),
    ],
)
def test_invalid_spec_is_refused_with_the_field_named(raw: dict, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert expected in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"model": {"name": "m"}, "runtime": "x", "deploymentMode": "y"})
    assert len(info.value.problems) == 2


def test_spec_hash_ignores_spelled_out_defaults() -> None:
    assert spec_hash({"model": {"name": "m"}}) == spec_hash(
        {"model": {"name": "m", "stableAlias": "champion"}, "runtime": "kserve-python"}
    )
    assert spec_hash({"model": {"name": "m"}}) != spec_hash({"model": {"name": "n"}})
