"""Triton arms under the label view: only repositories that can hide the arm are deployed.

A Triton repository published since publishing exports every registry version as Triton
version 1 answers in the client view the operator passes it (``MODELDEPLOY_RESPONSE_DETAIL``):
under ``label`` its answers name no version and carry no probabilities. One published before
that names the registry version in every answer (``model_version``) and always returns
``PROBABILITIES``, whatever the setting. Deploying such a version under the label view would
expose the arm silently, so the tick refuses it, with the reason in the status, an Event and
the log, until the spec says ``full`` or the alias points at a version published since.
"""

from __future__ import annotations

from modeldeploy.operator.api.types import ModelDeploymentSpec
from modeldeploy.operator.rollout.machine import RegistryState
from modeldeploy.registry.base import NotFound, RegistryClient, RegistryUnavailable
from modeldeploy.registry.triton import label_view_ready


def legacy_problem(client: RegistryClient, spec: ModelDeploymentSpec, state: RegistryState) -> str:
    """The refusal, or ``""`` when every aliased version can serve the spec's client view.

    A version without a Triton repository tag is not this check's business (its storageUri
    holds nothing Triton can load, and the platform says so); an unreadable registry is
    left to the tick's own handling.
    """
    if spec.runtime != "triton" or spec.serving.response_detail == "full" or not state.available:
        return ""
    legacy: list[str] = []
    for ref in (state.stable, state.candidate):
        if ref is None or ref.version in legacy:
            continue
        try:
            tags = client.get_version(spec.model.name, ref.version).tags
        except (NotFound, RegistryUnavailable):
            continue
        if label_view_ready(tags) is False:
            legacy.append(ref.version)
    if not legacy:
        return ""
    versions = ", ".join(legacy)
    return (
        f"spec.serving.responseDetail: runtime triton: the Triton repository of"
        f" {spec.model.name} version {versions} was published before Triton honoured the label"
        " view, so its answers carry the model version and probabilities; set"
        " spec.serving.responseDetail: full to accept that, or publish the checkpoint again"
        " (a new version) and point the alias at it"
    )
