"""The two rollout settings the machine's deadline logic reads, named for what they mean."""

from __future__ import annotations

from typing import Literal

from modeldeploy.operator.api.types import ModelDeploymentSpec

OnInconclusive = Literal["rollback", "hold"]


def step_deadline_seconds(spec: ModelDeploymentSpec) -> float:
    """How long one step may stay pending before ``on_inconclusive`` applies."""
    return float(spec.rollout.step_deadline_seconds)


def on_inconclusive(spec: ModelDeploymentSpec) -> OnInconclusive:
    """What a step still pending at its deadline does: roll back, or hold where it is."""
    return spec.rollout.analysis.on_inconclusive
