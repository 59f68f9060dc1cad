"""Manual control through annotations, so ``kubectl annotate`` and the CLI do the same thing.

``modeldeploy.io/promote`` and ``modeldeploy.io/abort`` name the canary *version* they
act on, so a leftover annotation never touches the next candidate;
``modeldeploy.io/paused`` is "true" while paused.
"""

from __future__ import annotations

from collections.abc import Mapping

from modeldeploy.operator.rollout.machine import Controls

PREFIX = "modeldeploy.io/"
PAUSED = PREFIX + "paused"
PROMOTE = PREFIX + "promote"
ABORT = PREFIX + "abort"


def controls_from(annotations: Mapping[str, str] | None) -> Controls:
    """The manual controls set on a resource."""
    ann = annotations or {}
    return Controls(
        paused=str(ann.get(PAUSED, "")).lower() == "true",
        promote=str(ann.get(PROMOTE, "")),
        abort=str(ann.get(ABORT, "")),
    )


def annotation_patch(command: str, canary_version: str = "") -> dict[str, str | None]:
    """The metadata.annotations merge patch for a CLI command (None deletes a key)."""
    if command == "pause":
        return {PAUSED: "true"}
    if command == "resume":
        return {PAUSED: None}
    if command in ("promote", "abort"):
        if not canary_version:
            raise ValueError(f"nothing to {command}: no canary is in progress")
        return {PREFIX + command: canary_version}
    raise ValueError(f"unknown command {command!r}")
