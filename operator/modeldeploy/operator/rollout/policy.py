"""The rollout settings the machine reads, in one place.

The spec is being reshaped (``deadlineSeconds`` becomes ``stepDeadlineSeconds``, and
``onInconclusive`` moves into ``spec.rollout.analysis``). Reading the two settings here,
and only here, keeps that change to this module.
"""

from __future__ import annotations

from typing import Literal

from modeldeploy.operator.api.types import ModelDeploymentSpec

OnInconclusive = Literal["rollback", "hold"]


def step_deadline_seconds(spec: ModelDeploymentSpec) -> float:
    """How long one step may stay pending before ``on_inconclusive`` applies."""
    ro = spec.rollout
    value = getattr(ro, "step_deadline_seconds", None)
    if value is None:
        value = getattr(ro, "deadline_seconds")  # noqa: B009 - the name before the rename
    return float(value)


def on_inconclusive(spec: ModelDeploymentSpec) -> OnInconclusive:
    """What a step still pending at its deadline does: roll back, or hold where it is."""
    ro = spec.rollout
    analysis = getattr(ro, "analysis", None)
    value = getattr(analysis, "on_inconclusive", None) or getattr(ro, "on_inconclusive", None)
    return "hold" if value == "hold" else "rollback"
