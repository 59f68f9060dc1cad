"""The operator's view of the registry: where the aliases point, and decision records.

Reads go through the registry's ``RegistryClient`` protocol (MLflow, or the in-memory fake
in tests); decisions go through ``modeldeploy.registry.decisions``, which is idempotent,
so a repeated tick after a crash never records a promotion twice.
"""

from __future__ import annotations

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import ModelDeploymentSpec
from modeldeploy.operator.rollout.machine import RegistryState
from modeldeploy.registry import decisions
from modeldeploy.registry.base import (
    TAG_MANIFEST_SHA256,
    NotFound,
    RegistryClient,
    RegistryUnavailable,
)


def _ref(client: RegistryClient, model: str, version: str | None) -> VersionRef | None:
    if not version:
        return None
    info = client.get_version(model, version)
    return VersionRef(str(info.version), info.tags.get(TAG_MANIFEST_SHA256, ""), info.source)


def read_state(client: RegistryClient, spec: ModelDeploymentSpec) -> RegistryState:
    """Where the stable and candidate aliases point; ``available=False`` if unreachable."""
    name = spec.model.name
    try:
        aliases = client.get_model(name).aliases
        stable = _ref(client, name, aliases.get(spec.model.stable_alias))
        candidate = _ref(client, name, aliases.get(spec.model.candidate_alias))
    except NotFound:
        return RegistryState(available=True)
    except RegistryUnavailable:
        return RegistryState(available=False)
    return RegistryState(available=True, stable=stable, candidate=candidate)


def _names(spec: ModelDeploymentSpec) -> decisions.AliasNames:
    return decisions.AliasNames(
        stable=spec.model.stable_alias, candidate=spec.model.candidate_alias
    )


def promote(client: RegistryClient, spec: ModelDeploymentSpec, version: str, reason: str) -> None:
    decisions.promote(client, spec.model.name, version, reason, names=_names(spec))


def reject(client: RegistryClient, spec: ModelDeploymentSpec, version: str, reason: str) -> None:
    decisions.reject(client, spec.model.name, version, reason, names=_names(spec))
