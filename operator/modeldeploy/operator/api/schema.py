"""The OpenAPI v3 schema of ModelDeployment, as the CRD carries it.

``spec`` is generated from the pydantic models in ``spec.py`` (the one declaration of
every field, its range and its default), so ``kubectl explain``, the API server and the
operator can never disagree. ``status`` is written by the operator only and stays a
hand-written schema here.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.operator.api.names import DNS1035_LABEL, NAME_MAX_LENGTH
from modeldeploy.operator.api.spec import ModelDeploymentSpec
from modeldeploy.operator.api.structural import structural_schema

Schema = dict[str, Any]

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md",)

PHASES = (
    "Initializing",
    "Stable",
    "Progressing",
    "Promoting",
    "RollingBack",
    "RolledBack",
    "Failed",
)


def _obj(description: str, properties: Schema, required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _bounded(
    kind: str, description: str, default: float | None, lo: float | None, hi: float | None
) -> Schema:
    schema: Schema = {"type": kind, "description": description}
    for key, value in (("default", default), ("minimum", lo), ("maximum", hi)):
        if value is not None:
            schema[key] = value
    return schema


def _int(
    description: str, default: int | None = None, lo: int | None = None, hi: int | None = None
) -> Schema:
    return _bounded("integer", description, default, lo, hi)


def _str(
    description: str,
    default: str | None = None,
    enum: tuple[str, ...] | None = None,
    pattern: str | None = None,
) -> Schema:
    schema: Schema = {"type": "string", "description": description}
    if default is not None:
        schema["default"] = default
    if enum:
        schema["enum"] = list(enum)
    if pattern:
        schema["pattern"] = pattern
    return schema


def _nullable_obj(description: str, properties: Schema) -> Schema:
    return {**_obj(description, properties), "nullable": True}


SPEC: Schema = structural_schema(ModelDeploymentSpec)

# A structural schema may restrict metadata.name (and nothing else in metadata).
METADATA: Schema = {
    "type": "object",
    "properties": {
        "name": {
            "type": "string",
            "description": "Also the InferenceService's name: a DNS-1035 label KServe accepts.",
            "pattern": DNS1035_LABEL,
            "maxLength": NAME_MAX_LENGTH,
        }
    },
}

_REF = {
    "version": _str("The registry version."),
    "digest": _str("The content hash of the version's artifacts."),
    "uri": _str("Where the version's artifacts are."),
}

STATUS: Schema = {
    "type": "object",
    "description": "Where the rollout stands: all operator state lives here and in the registry.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "phase": _str(
            "Initializing, Stable, Progressing, Promoting, RollingBack, RolledBack or Failed."
        ),
        "message": _str("A plain-words summary of the phase."),
        "observedGeneration": _int("The spec generation this status reflects."),
        "specHash": _str("A hash of the last applied spec."),
        "stable": {
            **_obj("The version serving the stable share of traffic.", dict(_REF)),
            "nullable": True,
        },
        "canary": _nullable_obj(
            "The candidate under rollout, if any.",
            {
                **_REF,
                "weight": _int("Percent of live traffic on the canary."),
                "step": _int("Index into rollout.steps; -1 is the shadow phase."),
                "startTime": _str("When this rollout started."),
                "stepStartTime": _str("When the current step started."),
                "outcome": _str("The decision taken, while it is carried out."),
                "startAttempts": _int("Failed attempts to start the canary so far."),
                "startError": _str("Why the last start of the canary failed (cleared once up)."),
                "nextStartTime": _str("When the next attempt to start the canary is due."),
                "notReadySince": _str("Since when the platform reports the canary not ready."),
            },
        ),
        "lastAnalysis": {
            "type": "object",
            "description": "The last verdict: decision, numbers and reason.",
            "nullable": True,
            "x-kubernetes-preserve-unknown-fields": True,
        },
        "history": {
            "type": "array",
            "description": "Recent rollouts and their outcomes (newest last, bounded).",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "registryAvailable": {"type": "boolean", "description": "The last registry read worked."},
        "metricsAvailable": {"type": "boolean", "description": "The last metrics read worked."},
        "paused": {"type": "boolean", "description": "The rollout is paused."},
        "conditions": {
            "type": "array",
            "description": "Ready, Progressing, Degraded, RegistryAvailable, MetricsAvailable.",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    },
}


def resource_schema() -> Schema:
    """The openAPIV3Schema of the whole resource (apiVersion, kind, metadata, spec, status)."""
    return {
        "type": "object",
        "description": "A BERT-family classifier served from the registry, rolled out by canary"
        " gated on live accuracy and P99 latency.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": METADATA,
            "spec": SPEC,
            "status": STATUS,
        },
        "required": ["spec"],
    }
