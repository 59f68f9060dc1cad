"""The platform contract: what the executor needs from wherever models are served.

Small on purpose (ensure, set traffic, read traffic, is ready, health per arm, promote,
clean up, and where the metrics are), so KServe, the local one-machine platform
(``modeldeploy.operator.local.platform``) and the do-nothing ``nop`` are interchangeable,
feed the same ``observer.MetricsWindows``, and one contract suite runs against each
(tests/contract).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from modeldeploy.operator.api.status import ArmHealth, VersionRef
from modeldeploy.operator.api.types import ModelDeploymentSpec

__all__ = ["ArmHealth", "ArmsPublisher", "Platform", "PlatformError", "Target"]


class PlatformError(Exception):
    """The platform refused or failed; ``transient`` says whether a retry may help.

    ``arm`` names the serving arm that could not be started (``canary``, ``stable``) when
    the failure is that arm's own (its process exited, its model failed to load), as
    opposed to the platform's (an API error): a canary that cannot start is counted
    toward its rejection, an API error only retried.
    """

    def __init__(self, message: str, *, transient: bool = True, arm: str = "") -> None:
        super().__init__(message)
        self.transient = transient
        self.arm = arm


@dataclass(frozen=True)
class Target:
    """The ModelDeployment being served: its identity and parsed spec."""

    name: str
    namespace: str
    spec: ModelDeploymentSpec
    uid: str = ""
    registry_uri: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


class Platform(Protocol):
    def ensure(self, target: Target, stable: VersionRef) -> None:
        """Serve ``stable`` with all traffic and no canary (create or update)."""
        ...

    def set_canary(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        """Deploy ``canary`` beside ``stable`` with ``weight`` percent of traffic."""
        ...

    def set_traffic(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        """Change only the canary's share (0 pins all traffic back on stable)."""
        ...

    def read_traffic(self, target: Target) -> int | None:
        """The canary's share the platform reports now (None: no canary or not known yet)."""
        ...

    def reassert_traffic(self, target: Target, weight: int) -> int | None:
        """Put the canary back on ``weight`` if something else moved it; the weight found then.

        None: nothing to correct (no canary, or the platform's own controller owns the split).
        """
        ...

    def is_ready(self, target: Target) -> bool:
        """True when the latest wanted revisions (stable and canary) serve."""
        ...

    def health(self, target: Target) -> Mapping[str, ArmHealth]:
        """Each served arm (``stable``, ``canary``) and whether its model is ready to answer.

        Asked every tick, so a dead or unhealthy arm is noticed at once: the machine rolls
        a canary back with the reason, and a dead stable is restarted. An arm that is not
        served (no canary) is left out.
        """
        ...

    def promote(self, target: Target, ref: VersionRef) -> None:
        """Make ``ref`` the stable version with all traffic, and remove the canary."""
        ...

    def clean_up(self, target: Target) -> None:
        """Remove everything served for ``target``."""
        ...

    def metrics_endpoints(self, target: Target) -> list[str]:
        """The ``/metrics`` URLs of the processes serving ``target`` (the scrape provider's
        list when the spec names no Prometheus); empty when nothing is served."""
        ...


@runtime_checkable
class ArmsPublisher(Protocol):
    """A platform that tells the feedback joiner (and the golden-set prober) where each arm
    serves (KServe, local): optional, so platforms without a joiner (nop) need nothing."""

    def publish_arms(
        self,
        target: Target,
        stable: VersionRef | None,
        canary: VersionRef | None,
        probe: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish stable's and the canary's own URLs while ``canary`` is given, else
        withdraw them; with ``probe`` (``operator/probing.py``) the prober probes the
        rollout too. Best effort, never raises."""
        ...


@runtime_checkable
class LabelPathReporter(Protocol):
    """A platform that can tell whether labels reach the arm that served a prediction
    (KServe: only through the joiner while traffic is split). Optional."""

    def label_path_problem(self, target: Target) -> str:
        """Why live labels may not reach the arm that served them, in plain words; ""
        when they do."""
        ...
