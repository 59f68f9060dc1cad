"""The operator fills in the arms the joiner pairs on, and the joiner pairs with them.

The real KServe platform and executor write against the emulated API server; the test plays
KServe (status: readiness, tagged traffic URLs, canary statuses) and the kubelet (each key
of the arms ConfigMap becomes a file of one directory); the real joiner reads that
directory and re-scores a label for a stable-only id on the canary URL the operator wrote
(a fake predictor arm that records what reached it); an arm URL that answers with another
registry version than the key names is refused, not recorded.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from modeldeploy.operator import rbac
from modeldeploy.operator.api.status import CanaryState, Status, VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.executor import Executor
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import Target
from modeldeploy.operator.platforms.kserve import KServePlatform
from modeldeploy.operator.settings import KServeSettings
from modeldeploy.serving.auth import Auth, RateLimiter, TokenSet
from modeldeploy.serving.contract.ids import IdIssuer
from modeldeploy.serving.contract.joiner import arms_key
from modeldeploy.serving.joiner.app import Joiner, JoinerConfig
from modeldeploy.serving.joiner.book import JoinBook
from modeldeploy.serving.joiner.pairing import ArmsFile
from tests.integration.serving_router.conftest import FakeArm
from tests.integration.serving_router.test_joiner_app import CONTROL, LABEL, Stack, issued, v1
from tests.support.kube_emulator import KubeEmulator, for_modeldeploy, serve_in_thread

RELEASE_NS, ARMS_CM = "modeldeploy-system", "md-modeldeploy-joiner-arms"
OPERATOR_AGENT, TEST_AGENT = "modeldeploy-operator-under-test", "modeldeploy-arms-test"
STABLE, CANARY = VersionRef("1", "aa", "s3://b/1"), VersionRef("2", "bb", "s3://b/2")


class Cluster:
    """The emulated API server, seen by the operator's client and by the test (as KServe)."""

    def __init__(self, emulator: KubeEmulator, url: str) -> None:
        self.emulator, self.url = emulator, url
        config = kubernetes.client.Configuration()
        config.host = url
        client = kubernetes.client.ApiClient(config)
        client.user_agent = OPERATOR_AGENT
        self.custom = kubernetes.client.CustomObjectsApi(client)

    def http(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
        headers = {"Content-Type": ctype, "User-Agent": TEST_AGENT}
        req = urllib.request.Request(self.url + path, data, headers, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def arms_data(self) -> dict[str, str]:
        path = f"/api/v1/namespaces/{RELEASE_NS}/configmaps/{ARMS_CM}"
        return dict(self.http(path).get("data") or {})

    def isvc_path(self, target: Target) -> str:
        return f"/apis/serving.kserve.io/v1beta1/namespaces/{target.namespace}/inferenceservices/{target.name}"  # noqa: E501

    def serve_serverless(self, target: Target, stable_url: str, canary_url: str) -> None:
        """What KServe reports once the canary's revision is ready, with tag routing."""
        isvc = self.http(self.isvc_path(target))
        status = {
            "observedGeneration": isvc["metadata"].get("generation", 1),
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {
                "predictor": {
                    "latestCreatedRevision": f"{target.name}-predictor-00002",
                    "latestReadyRevision": f"{target.name}-predictor-00002",
                    "traffic": [
                        {"tag": "prev", "percent": 90, "url": stable_url},
                        {"tag": "latest", "percent": 10, "latestRevision": True, "url": canary_url},
                    ],
                }
            },
        }
        self.http(self.isvc_path(target) + "/status", "PATCH", {"status": status})

    def serve_raw_canary(self, target: Target, canary: VersionRef) -> None:
        status = {"canaryStatuses": [{"name": m.canary_name(canary), "ready": True,
                                      "trafficPercent": 10}]}  # fmt: skip
        self.http(self.isvc_path(target) + "/status", "PATCH", {"status": status})

    def operator_calls(self, resource: str) -> list[tuple[str, str, str]]:
        return [
            (c.verb, c.resource, c.namespace)
            for c in self.emulator.calls
            if c.agent.startswith(OPERATOR_AGENT) and c.resource == resource
        ]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    emulator = for_modeldeploy()
    emulator.declare("", "v1", "configmaps", "ConfigMap")
    with serve_in_thread(emulator) as url:
        world = Cluster(emulator, url)
        # What the chart creates: the ConfigMap with the hand-filled key.
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ARMS_CM, "namespace": RELEASE_NS},
                "data": {"arms.json": json.dumps({"deployments": {}})}}  # fmt: skip
        world.http(f"/api/v1/namespaces/{RELEASE_NS}/configmaps", "POST", body)
        yield world


def md(name: str, namespace: str, mode: str = "Serverless") -> Target:
    raw = {"model": {"name": f"{name}-model", "registryUri": "http://mlflow:5000"},
           "deploymentMode": mode}  # fmt: skip
    return Target(name, namespace, parse_spec(raw), uid=f"uid-{name}")


def tick(platform: KServePlatform, target: Target, after: Status) -> None:
    """The executor's once-a-tick call (``reconcile._execute`` ends every tick with it)."""
    Executor(platform, registry=None, emit=lambda *_: None).run(  # type: ignore[arg-type]
        target, after, after, []
    )


def rolling(weight: int = 10) -> Status:
    return Status("Progressing", stable=STABLE, canary=CanaryState("2", "bb", "s3://b/2", weight))


def kubelet(data: dict[str, str], directory: Path) -> None:
    """The mounted ConfigMap: one file per key, files of removed keys gone."""
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        if old.name not in data:
            old.unlink()
    for key, value in data.items():
        if not (directory / key).exists() or (directory / key).read_text() != value:
            (directory / key).write_text(value)


@pytest_asyncio.fixture
async def canary_arm() -> AsyncIterator[FakeArm]:
    arm = FakeArm("2")
    server = TestServer(arm.app(), host="127.0.0.1")
    await server.start_server()
    arm.base_url = str(server.make_url("")).rstrip("/")
    yield arm
    await server.close()


@pytest_asyncio.fixture
async def joiner_on(tmp_path: Path, canary_arm: FakeArm) -> AsyncIterator[Stack]:
    auth = Auth(TokenSet([LABEL.encode()], "labels"), TokenSet([CONTROL.encode()], "control"),
                RateLimiter(50, 50))  # fmt: skip
    config = JoinerConfig(auth, JoinBook(IdIssuer(auth.id_key, "router")),
                          ArmsFile(tmp_path / "arms"), rescores_per_s=100)  # fmt: skip
    joiner = Joiner(config)
    api, events = (
        TestClient(TestServer(joiner.api_app())),
        TestClient(TestServer(joiner.events_app())),
    )
    await api.start_server()
    await events.start_server()
    yield Stack(joiner, api, events, canary_arm)
    await api.close()
    await events.close()


def platform_for(cluster: Cluster) -> KServePlatform:
    settings = KServeSettings(
        joiner_events_url="http://md-modeldeploy-joiner.modeldeploy-system.svc:8081",
        joiner_arms_configmap=f"{RELEASE_NS}/{ARMS_CM}",
    )
    return KServePlatform(cluster.custom, settings)


pytestmark = pytest.mark.asyncio


async def test_operator_writes_the_arms_and_the_joiner_pairs_on_the_canary_url(
    cluster: Cluster, joiner_on: Stack, tmp_path: Path
) -> None:
    platform = platform_for(cluster)
    demo, other = md("demo", "ml"), md("demo2", "team-b", "RawDeployment")
    for target in (demo, other):
        platform.set_canary(target, STABLE, CANARY, 10)
        tick(platform, target, rolling())
    # KServe has not reported the canary's revision ready: nothing to pair on yet (the
    # "latest" tag would still be stable's revision).
    assert set(cluster.arms_data()) == {"arms.json"}

    cluster.serve_serverless(demo, "http://127.0.0.1:9", joiner_on.canary.base_url)
    cluster.serve_raw_canary(other, CANARY)
    for target in (demo, other):
        tick(platform, target, rolling())
    data = cluster.arms_data()
    assert set(data) == {"arms.json", arms_key("ml", "demo"), arms_key("team-b", "demo2")}
    written = json.loads(data[arms_key("ml", "demo")])["deployments"]["demo"]
    assert written == {"model": "demo-model", "arms": {
        "stable": {"url": "http://127.0.0.1:9", "version": "1"},
        "canary": {"url": joiner_on.canary.base_url, "version": "2"}}}  # fmt: skip
    raw = json.loads(data[arms_key("team-b", "demo2")])["deployments"]["demo2"]["arms"]
    assert raw["canary"]["url"] == f"http://demo2-{m.canary_name(CANARY)}-predictor.team-b.svc"
    assert raw["stable"]["url"] == "http://demo2-predictor.team-b.svc"

    # The joiner reads the mounted ConfigMap; a label for an id only stable scored is
    # re-scored on the canary URL the operator wrote, and the pair is counted.
    kubelet(data, tmp_path / "arms")
    rid = issued("stable")
    request = {"id": "client-chosen", "instances": ["a good film"]}
    assert await joiner_on.log("stable", "1", request, v1(rid, 0, "1")) == "recorded"
    assert (await joiner_on.label(rid, 1))[0] == 200
    assert [p["texts"] for p in joiner_on.canary.predictions] == [["a good film"]]
    paired = await joiner_on.counts("modeldeploy_paired_outcomes_total")
    assert [(dict(k)["outcome"], dict(k)["canary_version"], v) for k, v in paired.items()] == [
        ("canary_only", "2", 1.0)
    ]
    assert joiner_on.joiner.config.arms.error == ""

    # Ticks with nothing new write nothing.
    patches = len(cluster.operator_calls("configmaps"))
    tick(platform, demo, rolling(25))
    assert len(cluster.operator_calls("configmaps")) == patches

    # A newer canary replaces it: until KServe reports its revision ready, "latest" is the
    # old canary's, so the key is withdrawn rather than left naming the new version.
    newer = VersionRef("3", "cc", "s3://b/3")
    platform.set_canary(demo, STABLE, newer, 10)
    newer_rolling = Status("Progressing", stable=STABLE, canary=CanaryState("3", weight=10))
    tick(platform, demo, newer_rolling)
    assert arms_key("ml", "demo") not in cluster.arms_data()
    cluster.serve_serverless(demo, "http://127.0.0.1:9", joiner_on.canary.base_url)
    tick(platform, demo, newer_rolling)
    again = json.loads(cluster.arms_data()[arms_key("ml", "demo")])["deployments"]["demo"]
    assert again["arms"]["canary"]["version"] == "3"
    # Here the URL still reaches the fake arm serving version 2: its answer is refused (a
    # re-score is recorded as the key's version), the label counts for stable alone.
    kubelet(cluster.arms_data(), tmp_path / "arms")
    third = issued("stable")
    request = {"id": "c3", "instances": ["a good cast"]}
    await joiner_on.log("stable", "1", request, v1(third, 1, "1"))
    assert (await joiner_on.label(third, 1))[0] == 200
    assert len(joiner_on.canary.predictions) == 2
    paired = await joiner_on.counts("modeldeploy_paired_outcomes_total")
    assert sum(paired.values()) == 1.0  # still only the first pair

    # The rollout of demo ends: its key goes, the other namespace's stays.
    tick(platform, demo, Status("Succeeded", stable=CANARY))
    data = cluster.arms_data()
    assert set(data) == {"arms.json", arms_key("team-b", "demo2")}
    kubelet(data, tmp_path / "arms")
    later = issued("stable")
    await joiner_on.log("stable", "2", {"instances": ["a good plot"]}, v1(later, 1, "2"))
    assert (await joiner_on.label(later, 1))[0] == 200
    assert len(joiner_on.canary.predictions) == 2  # not paired: no arms for demo any more
    rescores = await joiner_on.counts("modeldeploy_joiner_rescores_total")
    assert {dict(k)["outcome"]: v for k, v in rescores.items()} == {
        "paired": 1.0, "wrong_version": 1.0, "no_arms": 1.0
    }  # fmt: skip

    # RBAC: on ConfigMaps the operator only merge-patched the one the chart grants
    # (rbac.JOINER_ARMS); everything else it called is in the namespaced run's rules.
    assert {(g, r, v) for v, r, _ in cluster.operator_calls("configmaps") for g in [""]} == (
        rbac.allowed(rbac.JOINER_ARMS)
    )
    assert {ns for *_, ns in cluster.operator_calls("configmaps")} == {RELEASE_NS}
    made = {(c.group, c.resource, c.verb) for c in cluster.emulator.calls
            if c.agent.startswith(OPERATOR_AGENT)}  # fmt: skip
    assert made <= rbac.allowed(rbac.NAMESPACED_RUN + rbac.JOINER_ARMS)


async def test_a_missing_configmap_is_logged_and_never_fails_a_tick(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    settings = KServeSettings(joiner_arms_configmap=f"{RELEASE_NS}/not-there")
    platform = KServePlatform(cluster.custom, settings)
    demo = md("demo", "ml")
    platform.set_canary(demo, STABLE, CANARY, 10)
    cluster.serve_serverless(demo, "http://stable.example", "http://canary.example")
    with caplog.at_level(logging.WARNING):
        tick(platform, demo, rolling())
        tick(platform, demo, rolling())
    warned = [r.getMessage() for r in caplog.records if "arms ConfigMap" in r.getMessage()]
    assert len(warned) == 1 and "404" in warned[0]  # once per change of error
    assert cluster.arms_data() == {"arms.json": json.dumps({"deployments": {}})}
