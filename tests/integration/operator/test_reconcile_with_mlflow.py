"""The reconcile loop against a real MLflow: registry moves drive canaries, and real
verdicts from the analysis module (fed observations this test controls) promote or roll
back, with the decisions recorded in the registry. The platform is ``nop``; the kopf
wiring is tested apart."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modeldeploy.operator.analysis.observations import (
    ArmObservations,
    LatencyHistogram,
    Observations,
)
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.operator.reconcile import Deps, tick
from modeldeploy.registry.base import TAG_OUTCOME
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from tests.support.windows import FixedWindows

pytestmark = pytest.mark.slow
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def arm(correct: int, total: int, latency_ms: float, requests: int) -> ArmObservations:
    rng = random.Random(latency_ms)
    samples = [rng.gauss(latency_ms, latency_ms * 0.1) / 1000 for _ in range(requests)]
    return ArmObservations(
        labelled_correct=correct,
        labelled_total=total,
        latency=LatencyHistogram.from_samples(samples),
        requests={"ok": requests},
    )


GOOD = Observations(stable=arm(4250, 5000, 20, 5000), canary=arm(4300, 5000, 20, 5000))
BAD = Observations(stable=arm(4250, 5000, 20, 5000), canary=arm(3000, 5000, 20, 5000))


class World:
    """What the test controls: the observations the 'metrics provider' returns."""

    def __init__(self, url: str) -> None:
        self.client = MlflowRegistry(url)
        self.platform = NopPlatform()
        self.windows = FixedWindows()
        self.events: list[tuple[str, str, str]] = []
        self.deps = Deps(
            platform=self.platform,
            registry_for=lambda spec: self.client,
            windows=self.windows,
            emit=lambda kind, reason, msg: self.events.append((kind, reason, msg)),
        )
        self.body: dict = {}
        self.now = T0

    def run(self, ticks: int = 1) -> dict:
        for _ in range(ticks):
            self.now += timedelta(seconds=10)
            result = tick(self.body, self.now, self.deps)
            if result.patch:
                self.body["status"] = {**(self.body.get("status") or {}), **result.patch}
        return self.body["status"]


@pytest.fixture
def world(mlflow_server, tiny_checkpoint: Path, request) -> World:
    w = World(mlflow_server.url)
    model = f"sentiment-{request.node.name[-20:]}".replace("[", "-").replace("]", "")
    w.model = model  # type: ignore[attr-defined]
    publish_checkpoint(w.client, tiny_checkpoint, model, alias="champion")
    w.body = {
        "metadata": {"name": "s", "namespace": "ml", "generation": 1, "uid": "u"},
        "spec": {
            "model": {"name": model, "registryUri": mlflow_server.url},
            "rollout": {
                "steps": [50, 100],
                "intervalSeconds": 5,
                "analysis": {"accuracyMargin": 0.05, "minLabels": 100, "minRequests": 100},
            },
        },
    }
    return w


def test_registry_driven_canary_is_promoted_then_next_is_rolled_back(world, tiny_checkpoint):
    status = world.run()
    assert status["phase"] == "Stable" and status["stable"]["version"] == "1"
    assert status["stable"]["digest"]  # the manifest hash from the registry

    v2 = publish_checkpoint(world.client, tiny_checkpoint, world.model, alias="challenger")
    status = world.run()
    assert status["phase"] == "Progressing" and status["canary"]["version"] == v2.version
    assert status["canary"]["weight"] == 50

    world.windows.observations = GOOD
    status = world.run()
    assert status["canary"]["weight"] == 100, status["lastAnalysis"]
    status = world.run(2)  # the verdict says promote, then the promotion is carried out
    assert status["phase"] == "Stable" and status["stable"]["version"] == v2.version
    assert world.client.get_model(world.model).aliases["champion"] == v2.version
    assert [h["outcome"] for h in status["history"]] == ["Promoted"]
    assert ("promote", v2.version) in world.platform.calls

    world.windows.observations = BAD
    v3 = publish_checkpoint(world.client, tiny_checkpoint, world.model, alias="challenger")
    status = world.run(3)
    assert status["phase"] == "RolledBack", status
    assert "accuracy" in status["history"][-1]["reason"]
    assert world.client.get_model(world.model).aliases["champion"] == v2.version
    assert world.client.get_version(world.model, v3.version).tags.get(TAG_OUTCOME)
    reasons = [r for _, r, _ in world.events]
    assert reasons.count("Promoted") == 1 and "RolledBack" in reasons

    # Quiet afterwards: the rejected candidate is not retried, and no status write happens.
    assert tick(world.body, world.now + timedelta(seconds=10), world.deps).patch is None


def test_invalid_spec_is_reported_and_nothing_applied(world):
    world.body["spec"]["rollout"]["steps"] = [60, 30]
    status = world.run()
    assert status["phase"] == "Failed" and "strictly increasing" in status["message"]
    assert world.platform.calls == []
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
