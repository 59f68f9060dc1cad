"""Actions: what the state machine asks the world to do, as plain data.

The executor carries them out in order through a platform and the registry. Each one
is idempotent, so a tick repeated after a crash does no harm.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeldeploy.operator.api.status import VersionRef


@dataclass(frozen=True)
class EnsureStable:
    """Serve ``ref`` as the stable version (create or update the serving resources)."""

    ref: VersionRef


@dataclass(frozen=True)
class SetCanary:
    """Deploy ``ref`` as the canary next to stable, starting at ``weight``."""

    ref: VersionRef
    weight: int


@dataclass(frozen=True)
class SetTraffic:
    """Send ``weight`` percent of live traffic to the canary (0 pins it back on stable)."""

    weight: int


@dataclass(frozen=True)
class PromoteOnPlatform:
    """Make ``ref`` the stable version and remove the canary."""

    ref: VersionRef


@dataclass(frozen=True)
class RemoveCanary:
    """Remove the canary; stable keeps all traffic."""


@dataclass(frozen=True)
class PromoteInRegistry:
    """Move the stable alias to ``version`` and record the decision (skip if already there)."""

    version: str
    reason: str


@dataclass(frozen=True)
class RejectInRegistry:
    """Record that ``version`` was rolled back (clearing the candidate alias if it is there)."""

    version: str
    reason: str


@dataclass(frozen=True)
class EmitEvent:
    """A Kubernetes Event on the ModelDeployment: ``kind`` is Normal or Warning."""

    reason: str
    message: str
    kind: str = "Normal"


Action = (
    EnsureStable
    | SetCanary
    | SetTraffic
    | PromoteOnPlatform
    | RemoveCanary
    | PromoteInRegistry
    | RejectInRegistry
    | EmitEvent
)
