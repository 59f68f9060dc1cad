"""Rollout decisions written back to the registry: promotion and rejection (rollback).

Conventions (see docs/registry.md): the stable alias (``champion``) marks what serves,
the candidate alias (``challenger``) marks what a person or CI wants rolled out.

- Promote: move the stable alias to the candidate, remove the candidate alias (only if
  it still points at this version, so a newer candidate set meanwhile is kept), and tag
  the version with the outcome, the time and a short reason.
- Reject: remove the candidate alias (same rule), leave the stable alias where it is,
  and tag the version ``rejected`` with the reason.

Planning is pure (:func:`plan_promotion`, :func:`plan_rejection`): it compares what the
registry holds now with what the decision needs and returns only the missing steps, so
repeating a decision plans nothing and changes nothing, and a decision interrupted
half way is finished by running it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from modeldeploy.registry.base import (
    DEFAULT_CANDIDATE_ALIAS,
    DEFAULT_STABLE_ALIAS,
    TAG_DECIDED_AT,
    TAG_OUTCOME,
    TAG_REASON,
    DecisionConflict,
    RegistryClient,
)

MAX_REASON = 500  # a short, human reason; the full analysis lives in the operator's status


class Outcome(StrEnum):
    PROMOTED = "promoted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class AliasNames:
    """Alias names per deployment (both configurable)."""

    stable: str = DEFAULT_STABLE_ALIAS
    candidate: str = DEFAULT_CANDIDATE_ALIAS

    def __post_init__(self) -> None:
        if not self.stable or not self.candidate or self.stable == self.candidate:
            raise ValueError("stable and candidate aliases must be two different, non-empty names")


@dataclass(frozen=True)
class SetAlias:
    alias: str
    version: str


@dataclass(frozen=True)
class DeleteAlias:
    alias: str


@dataclass(frozen=True)
class SetTags:
    version: str
    tags: Mapping[str, str]


Step = SetAlias | DeleteAlias | SetTags


@dataclass(frozen=True)
class DecisionResult:
    """What a decision did: ``steps`` is empty when the registry already matched."""

    model: str
    version: str
    outcome: Outcome
    steps: tuple[Step, ...]

    @property
    def changed(self) -> bool:
        return bool(self.steps)


def decision_tags(outcome: Outcome, reason: str, now: datetime) -> dict[str, str]:
    reason = " ".join(reason.split())[:MAX_REASON] or "(no reason given)"
    return {
        TAG_OUTCOME: outcome.value,
        TAG_DECIDED_AT: now.astimezone(UTC).isoformat(timespec="seconds"),
        TAG_REASON: reason,
    }


def _record_step(
    version: str, tags: Mapping[str, str], outcome: Outcome, reason: str, now: datetime
) -> list[Step]:
    """Tag the decision unless the version already records this outcome.

    The first record wins: repeating a decision (a retried reconcile) must not rewrite
    its time or reason.
    """
    if tags.get(TAG_OUTCOME) == outcome.value:
        return []
    return [SetTags(version, decision_tags(outcome, reason, now))]


def plan_promotion(
    version: str,
    aliases: Mapping[str, str],
    tags: Mapping[str, str],
    reason: str,
    now: datetime,
    names: AliasNames = AliasNames(),
) -> list[Step]:
    """Steps that make ``version`` the promoted stable version (pure)."""
    steps: list[Step] = []
    if aliases.get(names.stable) != version:
        steps.append(SetAlias(names.stable, version))
    if aliases.get(names.candidate) == version:
        steps.append(DeleteAlias(names.candidate))
    steps += _record_step(version, tags, Outcome.PROMOTED, reason, now)
    return steps


def plan_rejection(
    version: str,
    aliases: Mapping[str, str],
    tags: Mapping[str, str],
    reason: str,
    now: datetime,
    names: AliasNames = AliasNames(),
) -> list[Step]:
    """Steps that roll back candidate ``version`` (pure). The stable alias is never touched."""
    if aliases.get(names.stable) == version:
        raise DecisionConflict(
            f"version {version} holds the {names.stable!r} alias; rejecting it would leave "
            "nothing stable to roll back to. Promote another version first."
        )
    steps: list[Step] = []
    if aliases.get(names.candidate) == version:
        steps.append(DeleteAlias(names.candidate))
    steps += _record_step(version, tags, Outcome.REJECTED, reason, now)
    return steps


def apply_steps(client: RegistryClient, model: str, steps: Sequence[Step]) -> None:
    """Carry out planned steps in order (aliases first, the record last)."""
    for step in steps:
        if isinstance(step, SetAlias):
            client.set_alias(model, step.alias, step.version)
        elif isinstance(step, DeleteAlias):
            client.delete_alias(model, step.alias)
        else:
            for key, value in step.tags.items():
                client.set_version_tag(model, step.version, key, value)


def _decide(
    client: RegistryClient,
    model: str,
    version: str,
    reason: str,
    outcome: Outcome,
    names: AliasNames,
    now: datetime | None,
) -> DecisionResult:
    version = str(version)
    info = client.get_version(model, version)  # NotFound for an unknown version
    aliases = client.get_model(model).aliases
    planner = plan_promotion if outcome is Outcome.PROMOTED else plan_rejection
    steps = planner(version, aliases, info.tags, reason, now or datetime.now(UTC), names)
    apply_steps(client, model, steps)
    return DecisionResult(model=model, version=version, outcome=outcome, steps=tuple(steps))


def promote(
    client: RegistryClient,
    model: str,
    version: str,
    reason: str,
    *,
    names: AliasNames = AliasNames(),
    now: datetime | None = None,
) -> DecisionResult:
    """Record a successful rollout of ``version``; idempotent."""
    return _decide(client, model, version, reason, Outcome.PROMOTED, names, now)


def reject(
    client: RegistryClient,
    model: str,
    version: str,
    reason: str,
    *,
    names: AliasNames = AliasNames(),
    now: datetime | None = None,
) -> DecisionResult:
    """Record a rollback of candidate ``version``; idempotent."""
    return _decide(client, model, version, reason, Outcome.REJECTED, names, now)
