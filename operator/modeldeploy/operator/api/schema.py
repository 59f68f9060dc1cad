"""The OpenAPI v3 schema of ModelDeployment: the one source of truth.

The CRD (``crd.py``), the spec parser (``types.py``: validation and defaults) and the
docs all read this module, so ``kubectl explain``, the API server and the operator can
never disagree about a field, its range or its default.
"""

from __future__ import annotations

from typing import Any

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


def _num(
    description: str, default: float | None = None, lo: float | None = None, hi: float | None = None
) -> Schema:
    return _bounded("number", description, default, lo, hi)


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


def _bool(description: str, default: bool) -> Schema:
    return {"type": "boolean", "description": description, "default": default}


QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

TOLERATION: Schema = _obj(
    "A Kubernetes toleration copied to the predictor pods (for tainted GPU nodes).",
    {
        "key": _str("The taint key the toleration matches."),
        "operator": _str("How the key is matched.", enum=("Exists", "Equal")),
        "value": _str("The taint value (with operator Equal)."),
        "effect": _str(
            "The taint effect matched; empty matches all.",
            enum=("NoSchedule", "PreferNoSchedule", "NoExecute"),
        ),
        "tolerationSeconds": _int("How long a NoExecute taint is tolerated.", lo=0),
    },
)

SPEC: Schema = _obj(
    "What to serve and how to roll a new version out. Versions come from the model registry:"
    " moving the candidate alias starts a canary.",
    {
        "model": _obj(
            "The registered model and the aliases that name the stable and candidate versions.",
            {
                "name": _str("The registered model name in the registry.", pattern=NAME),
                "registryUri": _str(
                    "The registry tracking URI; empty uses the operator's default registry."
                ),
                "stableAlias": _str(
                    "The alias of the version serving all traffic.", "champion", pattern=NAME
                ),
                "candidateAlias": _str(
                    "The alias whose moves start a canary rollout.", "challenger", pattern=NAME
                ),
            },
            required=("name",),
        ),
        "runtime": _str(
            "The model server: the project's KServe Python predictor or NVIDIA Triton.",
            "kserve-python",
            enum=("kserve-python", "triton"),
        ),
        "deploymentMode": _str(
            "The KServe deployment mode. Serverless splits traffic with canaryTrafficPercent;"
            " RawDeployment with spec.canary[].",
            "Serverless",
            enum=("Serverless", "RawDeployment"),
        ),
        "image": _str("The predictor container image; empty uses the operator's default."),
        "resources": _obj(
            "Compute for each predictor replica, placement and scaling bounds.",
            {
                "gpu": _int("NVIDIA GPUs per replica (the nvidia.com/gpu limit).", 0, 0, 8),
                "cpu": _str("CPU request and limit per replica.", "1", pattern=QUANTITY),
                "memory": _str("Memory request and limit per replica.", "2Gi", pattern=QUANTITY),
                "nodeSelector": {
                    "type": "object",
                    "description": "Node labels the predictor pods must run on (e.g. a GPU pool).",
                    "additionalProperties": {"type": "string"},
                },
                "tolerations": {
                    "type": "array",
                    "description": "Tolerations for the predictor pods.",
                    "items": TOLERATION,
                },
                "minReplicas": _int(
                    "The fewest replicas (0 lets Serverless scale to zero).", 1, 0, 100
                ),
                "maxReplicas": _int("The most replicas the autoscaler may start.", 1, 1, 100),
            },
        ),
        "rollout": _obj(
            "How a candidate is rolled out and judged.",
            {
                "steps": {
                    "type": "array",
                    "description": "Canary traffic percentages, increasing; the last must be 100.",
                    "items": {"type": "integer", "minimum": 1, "maximum": 100},
                    "minItems": 1,
                    "maxItems": 20,
                    "default": [10, 25, 50, 100],
                },
                "shadow": _obj(
                    "An optional first phase at 0% live traffic: the canary only scores mirrored"
                    " and probe traffic.",
                    {
                        "enabled": _bool("Run the shadow phase before the first step.", False),
                    },
                ),
                "intervalSeconds": _int("Seconds between two analyses.", 60, 5, 3600),
                "accuracy": _obj(
                    "The accuracy gate on paired labelled predictions.",
                    {
                        "margin": _num(
                            "How much lower canary accuracy may be (absolute: 0.02 = 2 points).",
                            0.02,
                            0.0,
                            1.0,
                        ),
                        "confidence": _num(
                            "Confidence required before the accuracy gate decides.",
                            0.95,
                            0.5,
                            0.999,
                        ),
                    },
                ),
                "latency": _obj(
                    "The latency gate on P99.",
                    {
                        "p99Tolerance": _num(
                            "How much slower the canary's P99 may be, relative (0.1 = 10%).",
                            0.1,
                            0.0,
                            10.0,
                        ),
                        "p99CapMs": _num(
                            "An absolute P99 ceiling in milliseconds; 0 = none.", 0.0, 0.0
                        ),
                    },
                ),
                "errorBudget": _num(
                    "The highest error rate the canary may have (0.01 = 1%).", 0.01, 0.0, 1.0
                ),
                "minLabelsPerStep": _int(
                    "Labelled predictions needed before a step can be judged.", 100, 0
                ),
                "minRequestsPerStep": _int("Requests needed before a step can be judged.", 200, 0),
                "pairedShare": _num(
                    "Share of canary traffic that stable also scores, so labels are paired.",
                    0.1,
                    0.0,
                    1.0,
                ),
                "deadlineSeconds": _int(
                    "How long a rollout may take before an inconclusive analysis is final.",
                    3600,
                    60,
                    604800,
                ),
                "onInconclusive": _str(
                    "What an inconclusive analysis does at the deadline.",
                    "rollback",
                    enum=("rollback", "hold"),
                ),
                "paused": _bool(
                    "Freeze the rollout where it is (the modeldeploy.io/paused annotation too).",
                    False,
                ),
            },
        ),
        "metrics": _obj(
            "Where the analysis reads request counts, errors and latency.",
            {
                "provider": _str(
                    "scrape reads the predictors' /metrics directly; prometheus queries a server.",
                    "scrape",
                    enum=("scrape", "prometheus"),
                ),
                "url": _str("The Prometheus URL (required with provider prometheus)."),
            },
        ),
        "feedback": _obj(
            "Delayed ground-truth labels sent back to the predictors.",
            {
                "enabled": _bool("Accept labels and use them in the accuracy gate.", True),
                "maxLabelAgeSeconds": _int(
                    "Labels for predictions older than this are ignored.", 3600, 1
                ),
            },
        ),
        "prober": _obj(
            "Synthetic labelled traffic sent to stable and canary through tag routing.",
            {
                "enabled": _bool("Run the prober during rollouts.", False),
                "requestsPerSecond": _num("Probe rate per revision.", 2.0, 0.0, 1000.0),
                "dataset": _str(
                    "A labelled dataset the prober draws from; empty uses the default."
                ),
            },
        ),
    },
    required=("model",),
)

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
            "metadata": {"type": "object"},
            "spec": SPEC,
            "status": STATUS,
        },
        "required": ["spec"],
    }
