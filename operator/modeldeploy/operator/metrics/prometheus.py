"""Prometheus: the HTTP query API with PromQL, for clusters where Prometheus scrapes pods.

Series and label names are the contract's (:mod:`modeldeploy.serving.contract.names`).
``snapshot`` reads the current cumulative value of every contract series of the two arms
in one instant query, with each instance's ``process_start_time_seconds``, kept per
``job/instance``. The observer then accumulates increases read by read exactly as for the
direct scrape (``metrics/accumulate.py``): it does not rely on PromQL ``increase``.
``window`` asks Prometheus itself for the increase of each counter and bucket over the
last ``seconds`` by version and role, for callers that have no baseline; Prometheus
extrapolates those increases, so they are rounded to whole counts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.metrics.base import AnalysisTarget, NoDataError, ProviderUnavailable
from modeldeploy.operator.metrics.snapshot import (
    ARM_METRICS,
    PAIR_DRIFT_METRICS,
    PAIRED,
    START_TIME,
    Sample,
    Snapshot,
    SourceCounters,
    collect,
)
from modeldeploy.serving.contract import names as n


def _quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def arm_selector(target: AnalysisTarget, version: str) -> str:
    names = "|".join(ARM_METRICS)
    return (
        f'{{__name__=~"{names}",{n.DEPLOYMENT}={_quote(target.deployment)},'
        f"{n.MODEL_VERSION}={_quote(version)}}}"
    )


def paired_selector(target: AnalysisTarget) -> str:
    return (
        f"{PAIRED}{{{n.DEPLOYMENT}={_quote(target.deployment)},"
        f"{n.STABLE_VERSION}={_quote(target.stable_version)},"
        f"{n.CANARY_VERSION}={_quote(target.canary_version)}}}"
    )


def pair_drift_selector(target: AnalysisTarget) -> str:
    """Label-free pair series (paired predictions, shadow agreement) of this deployment;
    ``collect`` keeps those of this stable and canary version."""
    names = "|".join(PAIR_DRIFT_METRICS)
    return (
        f'{{__name__=~"{names}",{n.DEPLOYMENT}={_quote(target.deployment)},'
        f"{n.STABLE_VERSION}={_quote(target.stable_version)}}}"
    )


def snapshot_query(target: AnalysisTarget) -> str:
    """One instant query for both arms, the paired outcomes, and the start time of every
    instance that exports them (so the observer sees a restart even when the counters
    grew back past their old values before the next read)."""
    series = [
        arm_selector(target, target.stable_version),
        arm_selector(target, target.canary_version),
        paired_selector(target),
        pair_drift_selector(target),
    ]
    ours = " or ".join(series)
    return f"{ours} or ({START_TIME} and on (job, instance) ({ours}))"


def window_queries(target: AnalysisTarget, seconds: int) -> dict[str, str]:
    """Per metric: its increase over the window, summed over instances and protocols.

    One query per name, because ``increase`` drops the metric name from its result.
    """
    versions = "|".join(
        re.escape(v) for v in sorted({target.stable_version, target.canary_version})
    )
    arm_by = ", ".join((*n.COMMON_LABELS, n.LE, n.OUTCOME, n.CORRECT, n.LABEL))
    queries = {
        name: (
            f"sum by ({arm_by}) "
            f"(increase({name}{{{n.DEPLOYMENT}={_quote(target.deployment)},"
            f"{n.MODEL_VERSION}=~{_quote(versions)}}}[{seconds}s]))"
        )
        for name in ARM_METRICS
    }
    paired_by = ", ".join((n.DEPLOYMENT, n.STABLE_VERSION, n.CANARY_VERSION, n.OUTCOME))
    queries[PAIRED] = f"sum by ({paired_by}) (increase({paired_selector(target)}[{seconds}s]))"
    pair_labels = (n.DEPLOYMENT, n.STABLE_VERSION, n.CANARY_VERSION, n.SHADOW_VERSION)
    pair_by = ", ".join((*pair_labels, n.STABLE_LABEL, n.CANARY_LABEL, n.AGREE))
    for name in PAIR_DRIFT_METRICS:
        selector = f"{name}{{{n.DEPLOYMENT}={_quote(target.deployment)}}}"
        queries[name] = f"sum by ({pair_by}) (increase({selector}[{seconds}s]))"
    return queries


class PrometheusProvider:
    """Snapshots (and window increases) from a Prometheus server's HTTP API."""

    def __init__(
        self,
        base_url: str,
        http_client: httpx.Client | None = None,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = http_client or httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._clock = clock

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query; the ``result`` vector, or ``ProviderUnavailable``."""
        try:
            response = self._client.get(
                f"{self.base_url}/api/v1/query", params={"query": promql}, timeout=self._timeout
            )
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"Prometheus query failed: {exc}") from exc
        if body.get("status") != "success":
            raise ProviderUnavailable(f"Prometheus query failed: {body.get('error', body)}")
        data = body.get("data", {})
        if data.get("resultType") != "vector":
            raise ProviderUnavailable(f"expected a vector, got {data.get('resultType')}")
        return list(data.get("result", []))

    @staticmethod
    def _samples(result: list[dict[str, Any]]) -> dict[str, list[Sample]]:
        """Group vector elements by source (job/instance) as ``(name, labels, value)``."""
        grouped: dict[str, list[Sample]] = {}
        for element in result:
            labels = dict(element.get("metric", {}))
            name = labels.pop("__name__", "")
            source = f"{labels.get('job', '')}/{labels.get('instance', '')}"
            value = float(element["value"][1])
            grouped.setdefault(source, []).append((name, labels, value))
        return grouped

    def snapshot(self, target: AnalysisTarget) -> Snapshot:
        taken_at = self._clock()
        grouped = self._samples(self.query(snapshot_query(target)))
        if not grouped:
            raise NoDataError(f"Prometheus has no series for {target.deployment}")
        sources: dict[str, SourceCounters] = {
            source: collect(samples, target) for source, samples in grouped.items()
        }
        return Snapshot(sources, taken_at)

    def window(self, target: AnalysisTarget, seconds: int) -> Observations:
        """Observations over the last ``seconds`` from PromQL ``increase`` (no baseline)."""
        samples: list[Sample] = []
        for name, promql in window_queries(target, seconds).items():
            for element in self.query(promql):
                labels = dict(element.get("metric", {}))
                samples.append((name, labels, float(element["value"][1])))
        counters = collect(samples, target)
        return Snapshot({"prometheus": counters}, self._clock()).observations()

    def is_online(self) -> bool:
        try:
            response = self._client.get(f"{self.base_url}/-/ready", timeout=self._timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
