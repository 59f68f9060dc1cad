"""Typed ModelDeployment spec, parsed from the resource's spec dict.

Parsing validates against the same schema the CRD carries (``schema.py``), fills the
schema's defaults, then checks what a schema cannot say (steps increasing, a URL for
Prometheus). Errors name the field, so the user can fix the YAML from the message.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema

from modeldeploy.operator.api.openapi import to_jsonschema
from modeldeploy.operator.api.schema import SPEC, Schema

Runtime = Literal["kserve-python", "triton"]
DeploymentMode = Literal["Serverless", "RawDeployment"]


class SpecError(ValueError):
    """The spec is invalid; ``problems`` lists every problem as 'field: message'."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid ModelDeployment spec: " + "; ".join(problems))


@dataclass(frozen=True)
class ModelRef:
    name: str
    registry_uri: str = ""
    stable_alias: str = "champion"
    candidate_alias: str = "challenger"


@dataclass(frozen=True)
class Resources:
    gpu: int = 0
    cpu: str = "1"
    memory: str = "2Gi"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    min_replicas: int = 1
    max_replicas: int = 1


@dataclass(frozen=True)
class RolloutPolicy:
    steps: tuple[int, ...] = (10, 25, 50, 100)
    shadow: bool = False
    interval_seconds: int = 60
    accuracy_margin: float = 0.02
    accuracy_confidence: float = 0.95
    p99_tolerance: float = 0.1
    p99_cap_ms: float = 0.0
    error_budget: float = 0.01
    min_labels_per_step: int = 100
    min_requests_per_step: int = 200
    paired_share: float = 0.1
    deadline_seconds: int = 3600
    on_inconclusive: Literal["rollback", "hold"] = "rollback"
    paused: bool = False


@dataclass(frozen=True)
class MetricsSource:
    provider: Literal["scrape", "prometheus"] = "scrape"
    url: str = ""


@dataclass(frozen=True)
class Feedback:
    enabled: bool = True
    max_label_age_seconds: int = 3600


@dataclass(frozen=True)
class Prober:
    enabled: bool = False
    requests_per_second: float = 2.0
    dataset: str = ""


@dataclass(frozen=True)
class ModelDeploymentSpec:
    model: ModelRef
    runtime: Runtime = "kserve-python"
    deployment_mode: DeploymentMode = "Serverless"
    image: str = ""
    resources: Resources = field(default_factory=Resources)
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)
    metrics: MetricsSource = field(default_factory=MetricsSource)
    feedback: Feedback = field(default_factory=Feedback)
    prober: Prober = field(default_factory=Prober)


def with_defaults(raw: Mapping[str, Any], schema: Schema = SPEC) -> dict[str, Any]:
    """A copy of ``raw`` with the schema's defaults filled in, nested objects included."""
    out: dict[str, Any] = copy.deepcopy(dict(raw))
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        elif key not in out and sub.get("type") == "object" and "properties" in sub:
            out[key] = {}
        if sub.get("type") == "object" and "properties" in sub and isinstance(out.get(key), dict):
            out[key] = with_defaults(out[key], sub)
    return out


def _path(error: jsonschema.ValidationError) -> str:
    parts = ["spec"]
    for item in error.absolute_path:
        parts.append(f"[{item}]" if isinstance(item, int) else f".{item}")
    return "".join(parts)


def _schema_problems(raw: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(to_jsonschema(SPEC))
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_path(e)}: {e.message}" for e in errors]


def _semantic_problems(spec: Mapping[str, Any]) -> list[str]:
    """Rules a structural schema cannot express."""
    problems: list[str] = []
    steps = spec["rollout"]["steps"]
    if any(b <= a for a, b in itertools.pairwise(steps)):
        problems.append(f"spec.rollout.steps: must be strictly increasing, got {steps}")
    if steps and steps[-1] != 100:
        problems.append(f"spec.rollout.steps: the last step must be 100, got {steps[-1]}")
    metrics = spec["metrics"]
    if metrics["provider"] == "prometheus" and not metrics.get("url"):
        problems.append("spec.metrics.url: required when spec.metrics.provider is prometheus")
    res = spec["resources"]
    if res["minReplicas"] > res["maxReplicas"]:
        problems.append(
            f"spec.resources.minReplicas: {res['minReplicas']} is more than"
            f" maxReplicas {res['maxReplicas']}"
        )
    model = spec["model"]
    if model["stableAlias"] == model["candidateAlias"]:
        problems.append("spec.model.candidateAlias: must differ from stableAlias")
    return problems


def parse_spec(raw: Mapping[str, Any] | None) -> ModelDeploymentSpec:
    """Validate and type a spec dict; raise SpecError listing every problem."""
    if not isinstance(raw, Mapping):
        raise SpecError(["spec: must be an object"])
    problems = _schema_problems(raw)
    if problems:
        raise SpecError(problems)
    spec = with_defaults(raw)
    problems = _semantic_problems(spec)
    if problems:
        raise SpecError(problems)
    m, r, ro = spec["model"], spec["resources"], spec["rollout"]
    return ModelDeploymentSpec(
        model=ModelRef(
            name=m["name"],
            registry_uri=m.get("registryUri", ""),
            stable_alias=m["stableAlias"],
            candidate_alias=m["candidateAlias"],
        ),
        runtime=spec["runtime"],
        deployment_mode=spec["deploymentMode"],
        image=spec.get("image", ""),
        resources=Resources(
            gpu=r["gpu"],
            cpu=r["cpu"],
            memory=r["memory"],
            node_selector=dict(r.get("nodeSelector", {})),
            tolerations=tuple(dict(t) for t in r.get("tolerations", [])),
            min_replicas=r["minReplicas"],
            max_replicas=r["maxReplicas"],
        ),
        rollout=RolloutPolicy(
            steps=tuple(ro["steps"]),
            shadow=ro["shadow"]["enabled"],
            interval_seconds=ro["intervalSeconds"],
            accuracy_margin=float(ro["accuracy"]["margin"]),
            accuracy_confidence=float(ro["accuracy"]["confidence"]),
            p99_tolerance=float(ro["latency"]["p99Tolerance"]),
            p99_cap_ms=float(ro["latency"]["p99CapMs"]),
            error_budget=float(ro["errorBudget"]),
            min_labels_per_step=ro["minLabelsPerStep"],
            min_requests_per_step=ro["minRequestsPerStep"],
            paired_share=float(ro["pairedShare"]),
            deadline_seconds=ro["deadlineSeconds"],
            on_inconclusive=ro["onInconclusive"],
            paused=ro["paused"],
        ),
        metrics=MetricsSource(
            provider=spec["metrics"]["provider"], url=spec["metrics"].get("url", "")
        ),
        feedback=Feedback(
            enabled=spec["feedback"]["enabled"],
            max_label_age_seconds=spec["feedback"]["maxLabelAgeSeconds"],
        ),
        prober=Prober(
            enabled=spec["prober"]["enabled"],
            requests_per_second=float(spec["prober"]["requestsPerSecond"]),
            dataset=spec["prober"].get("dataset", ""),
        ),
    )


def spec_hash(raw: Mapping[str, Any]) -> str:
    """A short stable hash of the spec with defaults, so a re-apply of the same YAML is a no-op."""
    text = json.dumps(with_defaults(raw), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
