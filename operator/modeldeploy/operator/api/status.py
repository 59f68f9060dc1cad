"""Typed ModelDeployment status, read from and written to the resource's status dict.

Everything the operator knows about a rollout is here (plus the registry), so each
tick starts from ``Status.from_dict(body["status"])`` and a restarted operator resumes
where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

HISTORY_LIMIT = 10


@dataclass(frozen=True)
class VersionRef:
    """One registry version: what it is called, its content hash, where its files are."""

    version: str
    digest: str = ""
    uri: str = ""


@dataclass(frozen=True)
class CanaryState:
    version: str
    digest: str = ""
    uri: str = ""
    weight: int = 0
    step: int = 0  # index into rollout.steps; -1 is the shadow phase
    start_time: str = ""
    step_start_time: str = ""
    outcome: str = ""  # set when a decision is taken: RolledBack or Aborted
    # Starting the canary failed ``start_attempts`` times; the last error, and when the
    # next attempt is due (kept here so a restarted operator keeps counting).
    start_attempts: int = 0
    start_error: str = ""
    next_start_time: str = ""
    # Since when the platform reports the canary not ready (empty: ready, or not asked).
    not_ready_since: str = ""

    @property
    def ref(self) -> VersionRef:
        return VersionRef(self.version, self.digest, self.uri)


@dataclass(frozen=True)
class ArmHealth:
    """What the platform says of one arm (stable or canary) right now.

    ``gone`` means no wait can help: the process exited, or the revision failed for good.
    ``reason`` says why it is not ready, in one line ("process exited (code 1): ...").
    """

    ready: bool
    reason: str = ""
    gone: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    version: str
    outcome: str  # Promoted, RolledBack, Aborted, Superseded
    reason: str = ""
    start_time: str = ""
    end_time: str = ""
    final_weight: int = 0


@dataclass(frozen=True)
class Status:
    phase: str = "Initializing"
    message: str = ""
    observed_generation: int = 0
    spec_hash: str = ""
    stable: VersionRef | None = None
    canary: CanaryState | None = None
    last_analysis: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[HistoryEntry, ...] = ()
    conditions: tuple[Mapping[str, Any], ...] = ()
    # None: not contacted (the spec is invalid, so there is nothing to ask them)
    registry_available: bool | None = True
    metrics_available: bool | None = True
    paused: bool = False

    def with_history(self, entry: HistoryEntry) -> Status:
        """Append an outcome, keeping the last HISTORY_LIMIT entries."""
        return replace(self, history=(*self.history, entry)[-HISTORY_LIMIT:])

    def decided(self, version: str) -> str | None:
        """The final outcome already recorded for ``version`` (Promoted/RolledBack), if any."""
        for entry in reversed(self.history):
            if entry.version == version and entry.outcome in ("Promoted", "RolledBack"):
                return entry.outcome
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.phase,
            "message": self.message,
            "observedGeneration": self.observed_generation,
            "specHash": self.spec_hash,
            "stable": _camel(asdict(self.stable)) if self.stable else None,
            "canary": _camel(asdict(self.canary)) if self.canary else None,
            "lastAnalysis": dict(self.last_analysis) or None,
            "history": [_camel(asdict(h)) for h in self.history],
            "conditions": [dict(c) for c in self.conditions],
            "registryAvailable": self.registry_available,
            "metricsAvailable": self.metrics_available,
            "paused": self.paused,
        }
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Status:
        raw = raw or {}
        stable = raw.get("stable")
        canary = raw.get("canary")
        return cls(
            phase=raw.get("phase") or "Initializing",
            message=raw.get("message") or "",
            observed_generation=int(raw.get("observedGeneration") or 0),
            spec_hash=raw.get("specHash") or "",
            stable=VersionRef(**_snake(stable, VersionRef)) if stable else None,
            canary=CanaryState(**_snake(canary, CanaryState)) if canary else None,
            last_analysis=dict(raw.get("lastAnalysis") or {}),
            history=tuple(
                HistoryEntry(**_snake(h, HistoryEntry)) for h in raw.get("history") or []
            ),
            conditions=tuple(dict(c) for c in raw.get("conditions") or []),
            registry_available=_flag(raw.get("registryAvailable", True)),
            metrics_available=_flag(raw.get("metricsAvailable", True)),
            paused=bool(raw.get("paused", False)),
        )


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _camel(d: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in d.items():
        head, *rest = key.split("_")
        out[head + "".join(p.title() for p in rest)] = value
    return out


def _snake(d: Mapping[str, Any], cls: type) -> dict[str, Any]:
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    out = {}
    for key, value in d.items():
        snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
        if snake in known:
            out[snake] = value
    return out
