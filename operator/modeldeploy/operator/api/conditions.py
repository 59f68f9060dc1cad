"""Kubernetes-style conditions, derived from the status in one function.

Conditions are never set piecemeal: ``derive`` computes all five from the phase and
the availability flags, and keeps ``lastTransitionTime`` of a condition whose status
did not change, so watchers see real transitions only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modeldeploy.operator.api.status import Status

# The reason of the inconclusive verdict reconcile gives while the canary does not serve yet.
NOT_READY = "canary revision not ready"

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "RegistryAvailable", "MetricsAvailable")
_ACTIVE = ("Progressing", "Promoting", "RollingBack")


def _held_not_ready(status: Status) -> bool:
    """The last analysis of the current canary step was held: its revision was not ready."""
    last, canary = status.last_analysis, status.canary
    return (
        canary is not None
        and last.get("reason") == NOT_READY
        and (last.get("version"), last.get("step")) == (canary.version, canary.step)
    )


def _wanted(status: Status) -> list[tuple[str, bool, str, str]]:
    """(type, true?, reason, message) for each condition."""
    phase, msg = status.phase, status.message
    ready = status.stable is not None and phase not in ("Initializing", "Failed")
    if status.paused and phase in _ACTIVE:
        progressing = (True, "Paused", "the rollout is paused")
    elif phase == "Progressing" and _held_not_ready(status):
        progressing = (True, "CanaryNotReady", msg)
    elif phase in _ACTIVE:
        progressing = (True, phase, msg)
    else:
        progressing = (False, phase, msg)
    degraded = phase in ("RolledBack", "Failed")
    return [
        (
            "Ready",
            ready,
            phase if ready else "NoStableVersion" if phase != "Failed" else phase,
            msg,
        ),
        ("Progressing", *progressing),
        ("Degraded", degraded, phase if degraded else "AsExpected", msg if degraded else ""),
        (
            "RegistryAvailable",
            status.registry_available,
            "Reachable" if status.registry_available else "Unreachable",
            "",
        ),
        (
            "MetricsAvailable",
            status.metrics_available,
            "Reachable" if status.metrics_available else "NoData",
            "",
        ),
    ]


def derive(
    status: Status, previous: Sequence[Mapping[str, Any]], now: str, generation: int = 0
) -> tuple[dict[str, Any], ...]:
    """All conditions for ``status``; unchanged ones keep their lastTransitionTime."""
    before = {c.get("type"): c for c in previous}
    out = []
    for ctype, ok, reason, message in _wanted(status):
        value = "True" if ok else "False"
        old = before.get(ctype)
        since = old["lastTransitionTime"] if old and old.get("status") == value else now
        out.append(
            {
                "type": ctype,
                "status": value,
                "reason": reason,
                "message": message,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return tuple(out)
