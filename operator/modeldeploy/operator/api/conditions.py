"""Kubernetes-style conditions, derived from the status in one function.

Conditions are never set piecemeal: ``derive`` computes all six from the phase, the
availability flags and the last analysis, and keeps ``lastTransitionTime`` of a
condition whose status did not change, so watchers see real transitions only.

``Underpowered`` is True when the last analysis of the current step estimated that the
checks need longer than the time left before the step's deadline (see
``analysis.planning``): the step will most likely end in ``onInconclusive``.
A step held at its deadline shows as ``Progressing`` with reason ``HeldInconclusive``.
A canary that failed to start (and is being retried) or that the platform reports not
ready shows as ``Progressing`` and ``Degraded``, reasons ``CanaryStartFailed`` and
``CanaryNotReady``, with the platform's reason as the message: never all healthy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modeldeploy.operator.api.status import Status

# The reason of the inconclusive verdict reconcile gives while the canary does not serve yet.
NOT_READY = "canary revision not ready"

CONDITION_TYPES = (
    "Ready",
    "Progressing",
    "Degraded",
    "RegistryAvailable",
    "MetricsAvailable",
    "Underpowered",
)
_ACTIVE = ("Progressing", "Promoting", "RollingBack")
_NOT_CONTACTED = "not contacted: the spec is invalid"

# (type, status True/False/None for Unknown, reason, message)
_Wanted = tuple[str, bool | None, str, str]


def _current(status: Status) -> Mapping[str, Any]:
    """The last analysis when it is of the current canary step, else empty."""
    last, canary = status.last_analysis, status.canary
    if canary is None or status.phase != "Progressing":
        return {}
    if (last.get("version"), last.get("step")) != (canary.version, canary.step):
        return {}
    return last


def _available(kind: str, flag: bool | None, down: str) -> _Wanted:
    if flag is None:
        return (kind, None, "NotContacted", _NOT_CONTACTED)
    return (kind, flag, "Reachable" if flag else down, "")


def _underpowered(status: Status) -> _Wanted:
    last = _current(status)
    expected, left = last.get("expectedDecisionSeconds"), last.get("secondsLeft")
    if expected is None or left is None:
        return ("Underpowered", False, "NoEstimate", "")
    weight = status.canary.weight if status.canary else 0
    if float(expected) > float(left):
        message = (
            f"at the current label and request rates the checks need about "
            f"{_duration(float(expected))} more to decide, but the step at {weight}% has "
            f"{_duration(float(left))} left before its deadline"
        )
        return ("Underpowered", True, "NotEnoughData", message)
    message = f"a decision is expected in about {_duration(float(expected))}"
    return ("Underpowered", False, "EnoughData", message)


def _duration(seconds: float) -> str:
    if seconds >= 10**8:
        return "forever (no samples arrive)"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _wanted(status: Status) -> list[_Wanted]:
    """(type, true?, reason, message) for each condition."""
    phase, msg = status.phase, status.message
    ready = status.stable is not None and phase not in ("Initializing", "Failed")
    canary = status.canary if phase == "Progressing" else None
    fault = ""
    if canary is not None and canary.start_error:
        fault = "CanaryStartFailed"
    elif canary is not None and canary.not_ready_since:
        fault = "CanaryNotReady"
    if fault:
        progressing = (True, fault, msg)
    elif status.paused and phase in _ACTIVE:
        progressing = (True, "Paused", "the rollout is paused")
    elif _current(status).get("reason") == NOT_READY:
        progressing = (True, "CanaryNotReady", msg)
    elif _current(status).get("decision") == "hold":
        progressing = (True, "HeldInconclusive", msg)
    elif phase in _ACTIVE:
        progressing = (True, phase, msg)
    else:
        progressing = (False, phase, msg)
    degraded = phase in ("RolledBack", "Failed") or bool(fault)
    degraded_msg = msg if degraded else ""
    return [
        (
            "Ready",
            ready,
            phase if ready else "NoStableVersion" if phase != "Failed" else phase,
            msg,
        ),
        ("Progressing", *progressing),
        ("Degraded", degraded, (fault or phase) if degraded else "AsExpected", degraded_msg),
        _available("RegistryAvailable", status.registry_available, "Unreachable"),
        _available("MetricsAvailable", status.metrics_available, "NoData"),
        _underpowered(status),
    ]


def derive(
    status: Status, previous: Sequence[Mapping[str, Any]], now: str, generation: int = 0
) -> tuple[dict[str, Any], ...]:
    """All conditions for ``status``; unchanged ones keep their lastTransitionTime."""
    before = {c.get("type"): c for c in previous}
    out = []
    for ctype, ok, reason, message in _wanted(status):
        value = "Unknown" if ok is None else "True" if ok else "False"
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
