"""Service-level objectives and prices of one ModelDeployment (``spec.slo``, ``spec.cost``).

Neither changes a rollout decision: the operator exports them as metrics
(``modeldeploy_slo_*``, ``modeldeploy_cost_*``; docs/metrics.md) so the chart's
PrometheusRule can compute error-budget burn rates and cost per 1k inferences for every
ModelDeployment with one rule, joined on ``namespace`` and ``deployment``.
"""

from __future__ import annotations

from pydantic import Field

from modeldeploy.operator.api.base import SpecModel


class ServiceLevelObjectives(SpecModel):
    """What users of the served model are promised; each unset objective has no alerts."""

    availability: float | None = Field(
        default=None,
        ge=0.5,
        le=0.99999,
        description="Share of requests answered without a server error (outcome error;"
        " client errors excluded), all versions together, e.g. 0.999. Unset = no"
        " availability SLO and no burn-rate alert on it.",
    )
    p99_latency_seconds: float | None = Field(
        default=None,
        gt=0.001,
        le=30.0,
        description="99% of requests (all versions together) must be faster than this."
        " Measured at the largest latency bucket edge at or below it (buckets are 5% apart),"
        " so the SLO is never looser than written. Unset = no latency SLO.",
    )


class Cost(SpecModel):
    """The prices for cost per 1k inferences; each unset one falls back to the chart's default
    (docs/metrics.md, "Cost per 1k inferences")."""

    cpu_core_hour: float | None = Field(
        default=None,
        ge=0.0,
        le=1000.0,
        description="Price of one CPU core-hour (CPU seconds the predictor process spends,"
        " user + system). Unset = the chart's monitoring.cost.cpuCoreHour.",
    )
    gpu_hour: float | None = Field(
        default=None,
        ge=0.0,
        le=1000.0,
        description="Price of one GPU-hour, billed while a GPU is allocated to a predictor"
        " process (GPUs held x wall time, busy or idle). Unset = the chart's"
        " monitoring.cost.gpuHour.",
    )
