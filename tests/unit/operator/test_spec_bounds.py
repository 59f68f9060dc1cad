"""Every value the CRD admits builds a spec, and the analysis runs on it.

Walks the generated CRD schema (not a hand-kept list), so a field added later is covered:
each numeric bound (exclusive ones just inside) and each enum value goes through the CRD's
own validation and ``parse_spec``; analysis settings then run through ``assess`` on real
observations, so a bound the statistics cannot take (a zero minimum that divides, a
confidence of 0.5) fails here. Just outside every bound, both the CRD and the parser refuse.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from modeldeploy.operator.analysis.assess import assess
from modeldeploy.operator.analysis.observations import PairedCounts
from modeldeploy.operator.api.crd import build_crd
from modeldeploy.operator.api.openapi import to_jsonschema
from modeldeploy.operator.api.types import SpecError, parse_spec
from tests.unit.analysis.helpers import arm, both, lognormal_latency

Path = tuple[str, ...]


def _resource_schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


SPEC_SCHEMA = _resource_schema()["properties"]["spec"]
CRD = jsonschema.Draft7Validator(to_jsonschema(_resource_schema()))


def _leaves(node: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, dict[str, Any]]]:
    for key, sub in node.get("properties", {}).items():
        yield from _leaves(sub, (*path, key))
    if "items" in node:
        yield from _leaves(node["items"], (*path, "[]"))
    if "properties" not in node and "items" not in node:
        yield path, node


def _step(value: float, kind: str, towards: float) -> float:
    """The next admissible value from ``value`` in the direction of ``towards``."""
    if kind == "integer":
        return value + (1 if towards > value else -1)
    return math.nextafter(value, towards)


def _inside(node: dict[str, Any]) -> list[float]:
    kind, values = node["type"], []
    if "minimum" in node:
        lo = node["minimum"]
        values.append(_step(lo, kind, math.inf) if node.get("exclusiveMinimum") else lo)
    if "maximum" in node:
        hi = node["maximum"]
        values.append(_step(hi, kind, -math.inf) if node.get("exclusiveMaximum") else hi)
    return values


def _outside(node: dict[str, Any]) -> list[float]:
    kind, values = node["type"], []
    if "minimum" in node:
        lo = node["minimum"]
        values.append(lo if node.get("exclusiveMinimum") else _step(lo, kind, -math.inf))
    if "maximum" in node:
        hi = node["maximum"]
        values.append(hi if node.get("exclusiveMaximum") else _step(hi, kind, math.inf))
    return values


def _nest(path: Path, value: Any) -> Any:
    """``value`` at ``path``; ``[]`` is a one-item list."""
    if not path:
        return value
    inner = _nest(path[1:], value)
    return [inner] if path[0] == "[]" else {path[0]: inner}


def _spec(path: Path, value: Any) -> dict[str, Any]:
    """A minimal spec with ``value`` at ``path``, plus what the semantic rules need."""
    spec: dict[str, Any] = {"model": {"name": "m"}, **_nest(path, value)}
    if path == ("rollout", "steps", "[]") and value != 100:
        spec["rollout"]["steps"].append(100)  # the last step must be 100
    if path == ("resources", "minReplicas"):
        spec["resources"]["maxReplicas"] = max(value, 1)
    if path == ("resources", "maxReplicas"):
        spec["resources"]["minReplicas"] = min(value, 1)
    if path == ("metrics", "provider") and value == "prometheus":
        spec["metrics"]["url"] = "http://prometheus:9090"
    if path[0] == "model":
        spec["model"] = {"name": "m", **spec["model"]}
    return spec


NUMERIC = [(p, n) for p, n in _leaves(SPEC_SCHEMA) if n.get("type") in ("integer", "number")]
ENUMS = [(p, n) for p, n in _leaves(SPEC_SCHEMA) if "enum" in n]
INSIDE = [(p, v) for p, n in NUMERIC for v in _inside(n)] + [
    (p, v) for p, n in ENUMS for v in n["enum"]
]
OUTSIDE = [(p, v) for p, n in NUMERIC for v in _outside(n)]


def _id(case: tuple[Path, Any]) -> str:
    return ".".join(case[0]) + f"={case[1]!r}"


def test_the_walk_sees_the_analysis_settings_and_their_enums() -> None:
    names = {".".join(p) for p, _ in INSIDE}
    assert {"rollout.analysis.confidence", "rollout.analysis.minLabels"} <= names
    assert {"rollout.analysis.onInconclusive", "rollout.analysis.checks.[]"} <= names
    assert "rollout.stepDeadlineSeconds" in names
    unbounded = [".".join(p) for p, n in NUMERIC if "maximum" not in n]
    assert unbounded == ["resources.tolerations.[].tolerationSeconds"]


# Enough data for every check to decide something, paired and unpaired.
OBSERVATIONS = [
    both(
        arm(850, 1000, latency=lognormal_latency(2000, 0.02, 1), ok=2000, error=5),
        arm(840, 1000, latency=lognormal_latency(2000, 0.021, 2), ok=2000, error=6),
        paired=PairedCounts(both_correct=780, stable_only=70, canary_only=60, both_wrong=90),
    ),
    both(arm(3, 4, latency=lognormal_latency(4, 0.02, 3), ok=4), arm(0, 0)),
    None,
]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a NaN on the way is a failure too
@pytest.mark.parametrize("case", INSIDE, ids=[_id(c) for c in INSIDE])
def test_every_admitted_value_parses_and_the_analysis_runs(case: tuple[Path, Any]) -> None:
    path, value = case
    raw = _spec(path, value)
    assert CRD.is_valid({"metadata": {"name": "md"}, "spec": raw})
    spec = parse_spec(raw)
    config = spec.rollout.analysis
    for observations in OBSERVATIONS:
        verdict = assess(config, observations)
        assert verdict.outcome in ("pass", "fail", "pending")


@pytest.mark.parametrize("case", OUTSIDE, ids=[_id(c) for c in OUTSIDE])
def test_every_value_just_outside_a_bound_is_refused_by_both(case: tuple[Path, Any]) -> None:
    path, value = case
    raw = _spec(path, value)
    assert not CRD.is_valid({"metadata": {"name": "md"}, "spec": raw})
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    field = ".".join(k for k in path if k != "[]")
    assert any(p.startswith("spec.") and field.split(".")[-1] in p for p in info.value.problems)
