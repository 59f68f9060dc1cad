"""Typed ModelDeployment spec: parse the resource's spec dict, or say what is wrong with it.

The models live in ``spec.py`` (and ``analysis.py`` for ``spec.rollout.analysis``); the CRD
is generated from the same models, so the parser and the API server agree on every name,
bound and default. Parsing is strict JSON-mode validation (``"10"`` is not a number here,
as it is not for the API server), then the rules a schema cannot say (steps increasing, a
URL for Prometheus). Errors name the field as the YAML spells it, so the user can fix the
YAML from the message.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from modeldeploy.operator.api.analysis import AnalysisConfig
from modeldeploy.operator.api.names import name_problems
from modeldeploy.operator.api.spec import (
    DeploymentMode,
    MetricsSource,
    ModelDeploymentSpec,
    ModelRef,
    Resources,
    RolloutPolicy,
    Runtime,
    Toleration,
)

__all__ = [
    "AnalysisConfig",
    "DeploymentMode",
    "MetricsSource",
    "ModelDeploymentSpec",
    "ModelRef",
    "Resources",
    "RolloutPolicy",
    "Runtime",
    "SpecError",
    "Toleration",
    "name_problems",
    "parse_spec",
    "spec_hash",
]


class SpecError(ValueError):
    """The spec is invalid; ``problems`` lists every problem as 'field: message'."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid ModelDeployment spec: " + "; ".join(problems))


def _path(loc: tuple[int | str, ...]) -> str:
    return "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _problem(error: ErrorDetails) -> str:
    message = error["msg"]
    value = error.get("input")
    if error["type"] not in ("missing", "extra_forbidden") and not isinstance(value, dict | list):
        message += f", got {value!r}"
    return f"{_path(error['loc'])}: {message}"


def _follows(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """A list "too short" only because its bad items were dropped: the items say it all."""
    loc = tuple(error["loc"])
    return error["type"] == "too_short" and any(
        tuple(e["loc"])[: len(loc)] == loc and len(e["loc"]) > len(loc) for e in errors
    )


def _semantic_problems(spec: ModelDeploymentSpec) -> list[str]:
    """Rules a structural schema cannot express."""
    problems: list[str] = []
    steps = list(spec.rollout.steps)
    if any(b <= a for a, b in itertools.pairwise(steps)):
        problems.append(f"spec.rollout.steps: must be strictly increasing, got {steps}")
    if steps[-1] != 100:
        problems.append(f"spec.rollout.steps: the last step must be 100, got {steps[-1]}")
    if spec.metrics.provider == "prometheus" and not spec.metrics.url:
        problems.append("spec.metrics.url: required when spec.metrics.provider is prometheus")
    res = spec.resources
    if res.min_replicas > res.max_replicas:
        problems.append(
            f"spec.resources.minReplicas: {res.min_replicas} is more than"
            f" maxReplicas {res.max_replicas}"
        )
    if spec.model.stable_alias == spec.model.candidate_alias:
        problems.append("spec.model.candidateAlias: must differ from stableAlias")
    return problems


def parse_spec(raw: Mapping[str, Any] | None) -> ModelDeploymentSpec:
    """Validate and type a spec dict (camelCase keys); raise SpecError listing every problem."""
    if not isinstance(raw, Mapping):
        raise SpecError(["spec: must be an object"])
    try:
        text = json.dumps(dict(raw), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SpecError([f"spec: not plain JSON data ({exc})"]) from exc
    try:
        spec = ModelDeploymentSpec.model_validate_json(
            text, strict=True, by_alias=True, by_name=False
        )
    except ValidationError as exc:
        errors = exc.errors()
        raise SpecError([_problem(e) for e in errors if not _follows(e, errors)]) from None
    problems = _semantic_problems(spec)
    if problems:
        raise SpecError(problems)
    return spec


def spec_hash(raw: Mapping[str, Any]) -> str:
    """A short stable hash of the spec with defaults, so a re-apply of the same YAML is a no-op.

    An invalid spec has no defaults to fill in: its hash is of the spec as written.
    """
    try:
        data: Any = parse_spec(raw).model_dump(mode="json", by_alias=True)
    except SpecError:
        data = raw
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
