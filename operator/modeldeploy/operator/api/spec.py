"""The ModelDeployment spec as pydantic models: the one declaration of every field.

The CRD's ``spec`` schema is generated from these models (``structural.py``), parsing is
``ModelDeploymentSpec.model_validate_json`` (``types.parse_spec``), and the field table in
docs/modeldeployment.md is generated from the CRD, so names, bounds, defaults and
descriptions are declared once. Python attributes are snake_case; YAML keys are camelCase.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic.json_schema import JsonDict

from modeldeploy.operator.api.analysis import AnalysisConfig
from modeldeploy.operator.api.base import SpecModel
from modeldeploy.operator.api.prober import ProberPolicy
from modeldeploy.operator.api.slo import Cost, ServiceLevelObjectives

Runtime = Literal["kserve-python", "triton"]
DeploymentMode = Literal["Serverless", "RawDeployment"]
Percent = Annotated[int, Field(ge=1, le=100)]

QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"
REGISTRY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# A nested section that is absent gets all its defaults: the API server fills them in too.
ALL_DEFAULTS: JsonDict = {"default": {}}


class ModelRef(SpecModel):
    """The registered model and the aliases that name the stable and candidate versions."""

    name: str = Field(
        pattern=REGISTRY_NAME,
        description="The registered model name in the registry.",
    )
    registry_uri: str = Field(
        default="",
        description="The registry tracking URI; empty uses the operator's default registry.",
    )
    stable_alias: str = Field(
        default="champion",
        pattern=REGISTRY_NAME,
        description="The alias of the version serving all traffic.",
    )
    candidate_alias: str = Field(
        default="challenger",
        pattern=REGISTRY_NAME,
        description="The alias whose moves start a canary rollout.",
    )


class Toleration(SpecModel):
    """A Kubernetes toleration copied to the predictor pods (for tainted GPU nodes)."""

    key: str | None = Field(
        default=None,
        description="The taint key the toleration matches.",
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None,
        description="How the key is matched.",
    )
    value: str | None = Field(
        default=None,
        description="The taint value (with operator Equal).",
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None,
        description="The taint effect matched; empty matches all.",
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        description="How long a NoExecute taint is tolerated.",
    )

    def manifest(self) -> dict[str, str | int]:
        """The toleration as a pod spec carries it: camelCase, unset keys left out."""
        return self.model_dump(by_alias=True, exclude_none=True)


class Resources(SpecModel):
    """Compute for each predictor replica, placement and scaling bounds."""

    gpu: int = Field(
        default=0,
        ge=0,
        le=8,
        description="NVIDIA GPUs per replica (the nvidia.com/gpu limit).",
    )
    cpu: str = Field(
        default="1",
        pattern=QUANTITY,
        description="CPU request and limit per replica.",
    )
    memory: str = Field(
        default="2Gi",
        pattern=QUANTITY,
        description="Memory request and limit per replica.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels the predictor pods must run on (e.g. a GPU pool).",
    )
    tolerations: tuple[Toleration, ...] = Field(
        default=(),
        description="Tolerations for the predictor pods.",
    )
    min_replicas: int = Field(
        default=1,
        ge=0,
        le=100,
        description="The fewest replicas (0 lets Serverless scale to zero).",
    )
    max_replicas: int = Field(
        default=1,
        ge=1,
        le=100,
        description="The most replicas the autoscaler may start.",
    )


class RolloutPolicy(SpecModel):
    """How a candidate is rolled out and judged."""

    steps: tuple[Percent, ...] = Field(
        default=(10, 50, 100),
        min_length=1,
        max_length=20,
        description="Canary traffic percentages (1-100), strictly increasing; the last must"
        " be 100.",
    )
    interval_seconds: int = Field(
        default=60,
        ge=5,
        le=3600,
        description="Seconds between two analyses.",
    )
    step_deadline_seconds: int = Field(
        default=3600,
        ge=60,
        le=604800,
        description="How long one step may collect evidence before an inconclusive analysis"
        " is final, counted from the step's start.",
    )
    paused: bool = Field(
        default=False,
        description="Freeze the rollout where it is (the modeldeploy.io/paused annotation too).",
    )
    analysis: AnalysisConfig = Field(
        default_factory=AnalysisConfig,
        description="The gates on accuracy, latency and errors, and how sure each must be.",
        json_schema_extra=ALL_DEFAULTS,
    )
    prober: ProberPolicy = Field(
        default_factory=ProberPolicy,
        description="Golden-set probes to both arms while a canary is undecided.",
        json_schema_extra=ALL_DEFAULTS,
    )


class MetricsSource(SpecModel):
    """Where the analysis reads request counts, errors and latency."""

    provider: Literal["scrape", "prometheus"] = Field(
        default="scrape",
        description="scrape reads the predictors' /metrics directly; prometheus queries a server.",
    )
    url: str = Field(
        default="",
        description="The Prometheus URL (required with provider prometheus).",
    )


class ServingOptions(SpecModel):
    """What the predictors show the applications that call them."""

    response_detail: Literal["label", "full"] = Field(
        default="label",
        description="What an answer carries. label: the predicted class (name and index), the"
        " request id, the model and class names; nothing that tells the stable and canary arms"
        " apart. full: also the model version, per-class probabilities, confidence and token"
        " counts, and the router's x-modeldeploy-arm header, which let a client see which arm"
        " served it and label selectively.",
    )


class ModelDeploymentSpec(SpecModel):
    """What to serve and how to roll a new version out.

    Versions come from the model registry: moving the candidate alias starts a canary.
    """

    model: ModelRef = Field(
        description="The registered model and the aliases that name the stable and candidate"
        " versions.",
    )
    runtime: Runtime = Field(
        default="kserve-python",
        description="The model server: the project's KServe Python predictor or NVIDIA Triton.",
    )
    deployment_mode: DeploymentMode = Field(
        default="Serverless",
        description="The KServe deployment mode. Serverless splits traffic with"
        " canaryTrafficPercent; RawDeployment with spec.canary[].",
    )
    image: str = Field(
        default="",
        description="The predictor container image; empty uses the operator's default.",
    )
    resources: Resources = Field(
        default_factory=Resources,
        description="Compute for each predictor replica, placement and scaling bounds.",
        json_schema_extra=ALL_DEFAULTS,
    )
    rollout: RolloutPolicy = Field(
        default_factory=RolloutPolicy,
        description="How a candidate is rolled out and judged.",
        json_schema_extra=ALL_DEFAULTS,
    )
    metrics: MetricsSource = Field(
        default_factory=MetricsSource,
        description="Where the analysis reads request counts, errors and latency.",
        json_schema_extra=ALL_DEFAULTS,
    )
    slo: ServiceLevelObjectives = Field(
        default_factory=ServiceLevelObjectives,
        description="Availability and P99 latency objectives; the chart alerts on their"
        " error-budget burn rate.",
        json_schema_extra=ALL_DEFAULTS,
    )
    cost: Cost = Field(
        default_factory=Cost,
        description="The price per CPU core-hour, for cost per 1k inferences.",
        json_schema_extra=ALL_DEFAULTS,
    )
    serving: ServingOptions = Field(
        default_factory=ServingOptions,
        description="What the predictors' answers show the applications that call them.",
        json_schema_extra=ALL_DEFAULTS,
    )
