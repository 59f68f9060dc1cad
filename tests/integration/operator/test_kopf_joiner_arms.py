"""The real operator under kopf keeps the joiner's arms ConfigMap current through a rollout.

With a joiner configured (the chart's environment), the canary's and stable's tag-routing
URLs appear under the deployment's key while the canary is undecided and are gone once it
is promoted; every call the run made is granted by the namespaced rules plus
``rbac.JOINER_ARMS``, and on ConfigMaps it only patched the one the chart names.
"""

from __future__ import annotations

import json
import time

import pytest

from modeldeploy.operator import rbac
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.serving.contract.joiner import arms_key
from tests.integration.operator.kopf_world import (
    MD_PATH,
    NS,
    TEST_AGENT,
    http,
    model_name,
    resource,
)

pytestmark = pytest.mark.slow
RELEASE_NS, ARMS_CM = "modeldeploy-system", "md-modeldeploy-joiner-arms"
CM_PATH = f"/api/v1/namespaces/{RELEASE_NS}/configmaps"


def test_the_operator_publishes_and_withdraws_the_arms(
    cluster, tiny_checkpoint, request, monkeypatch
):
    cluster.emulator.declare("", "v1", "configmaps", "ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ARMS_CM, "namespace": RELEASE_NS},
            "data": {"arms.json": '{"deployments": {}}'}}  # fmt: skip
    http(f"{cluster.url}{CM_PATH}", "POST", body)
    monkeypatch.setenv("MODELDEPLOY_JOINER_EVENTS_URL", "http://joiner.modeldeploy-system.svc:8081")
    monkeypatch.setenv("MODELDEPLOY_JOINER_ARMS_CONFIGMAP", f"{RELEASE_NS}/{ARMS_CM}")
    key = arms_key(NS, "sentiment")

    def arms() -> dict[str, str]:
        return dict(http(f"{cluster.url}{CM_PATH}/{ARMS_CM}").get("data") or {})

    model = model_name(request)
    client = MlflowRegistry(request.getfixturevalue("mlflow_server").url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    http(f"{cluster.url}{MD_PATH}", "POST", resource("sentiment", model))
    with cluster.operator():
        cluster.wait("sentiment", lambda s: s.get("phase") == "Stable")
        assert key not in arms()
        v2 = publish_checkpoint(client, tiny_checkpoint, model, alias="challenger")
        seen: dict[str, str] = {}

        def published(status: dict) -> bool:
            seen.update(arms())
            return key in seen

        cluster.wait("sentiment", published)
        entry = json.loads(seen[key])["deployments"]["sentiment"]
        assert entry == {"model": model, "arms": {
            "stable": {"url": cluster.murl + "/stable", "version": "1"},
            "canary": {"url": cluster.murl + "/canary", "version": v2.version}}}  # fmt: skip
        status = cluster.wait(
            "sentiment", lambda s: s.get("phase") == "Stable" and not s.get("canary")
        )
        assert status["stable"]["version"] == v2.version
        deadline = time.monotonic() + 15
        while key in arms() and time.monotonic() < deadline:
            cluster.wait("sentiment", lambda s: True)
            time.sleep(0.5)
        assert set(arms()) == {"arms.json"}
    made = {(c.group, c.resource, c.verb) for c in cluster.emulator.calls if c.agent != TEST_AGENT}
    granted = rbac.allowed(rbac.NAMESPACED_RUN + rbac.JOINER_ARMS)
    assert made <= granted, made - granted
    assert {t for t in made if t[1] == "configmaps"} == rbac.allowed(rbac.JOINER_ARMS)
    namespaces = {c.namespace for c in cluster.emulator.calls if c.resource == "configmaps"
                  and c.agent != TEST_AGENT}  # fmt: skip
    assert namespaces == {RELEASE_NS}
