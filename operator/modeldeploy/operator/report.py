"""Plain-words rendering of a ModelDeployment's status for ``modeldeploy rollout status``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def describe(body: Mapping[str, Any]) -> str:
    """A short human summary: phase, versions, weight, last analysis, history."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    stable = status.get("stable") or {}
    canary = status.get("canary") or {}
    lines = [
        f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        f"  model={(spec.get('model') or {}).get('name', '?')}",
        f"phase:   {status.get('phase', 'Unknown')}"
        + ("  (paused)" if status.get("paused") else ""),
        f"message: {status.get('message', '')}",
        f"stable:  {stable.get('version', '-')}  {stable.get('digest', '')}",
    ]
    if canary:
        lines.append(
            f"canary:  {canary.get('version')}  weight={canary.get('weight')}%"
            f"  step={canary.get('step')}  since={canary.get('startTime')}"
        )
    last = status.get("lastAnalysis") or {}
    if last:
        lines.append(
            f"analysis: {last.get('decision')} at {last.get('time')}: {last.get('reason')}"
        )
        timing = step_timing(last)
        if timing:
            lines.append(f"  {timing}")
        for key, value in sorted((last.get("numbers") or {}).items()):
            lines.append(f"  {key} = {value}")
    for entry in status.get("history") or []:
        lines.append(
            f"history: {entry.get('version')} {entry.get('outcome')} at {entry.get('endTime')}:"
            f" {entry.get('reason')}"
        )
    for cond in status.get("conditions") or []:
        lines.append(f"condition: {cond.get('type')}={cond.get('status')} ({cond.get('reason')})")
    return "\n".join(lines)


def step_timing(last: Mapping[str, Any]) -> str:
    """ "decision expected in ~N s, M s left in this step" (empty when not estimated)."""
    expected, left = last.get("expectedDecisionSeconds"), last.get("secondsLeft")
    if expected is None or left is None:
        return ""
    when = "never at the current rates" if expected >= 10**8 else f"in ~{expected} s"
    return f"decision expected {when}; {left} s left before the step's deadline"
