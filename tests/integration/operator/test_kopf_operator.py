"""The real operator under kopf, against the emulated API server, with a real MLflow.

Create -> a registry-driven canary -> promotion -> another canary -> rollback, with real
verdicts of the analysis (see ``kopf_world.py`` for the world these tests drive).
"""

from __future__ import annotations

import pytest

from modeldeploy.operator import rbac
from modeldeploy.registry.base import TAG_OUTCOME
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from tests.integration.operator.kopf_world import MD_PATH, TEST_AGENT, http, model_name, resource

pytestmark = pytest.mark.slow


def test_create_canary_promotion_and_rollback(cluster, tiny_checkpoint, request):
    model = model_name(request)
    client = MlflowRegistry(request.getfixturevalue("mlflow_server").url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    http(f"{cluster.url}{MD_PATH}", "POST", resource("sentiment", model))
    with cluster.operator():
        status = cluster.wait("sentiment", lambda s: s.get("phase") == "Stable")
        assert status["stable"]["version"] == "1" and status["observedGeneration"] == 1
        ready = {c["type"]: c["status"] for c in status["conditions"]}
        assert ready["Ready"] == "True" and ready["RegistryAvailable"] == "True"
        isvc = cluster.isvc("sentiment")
        assert isvc is not None and "canaryTrafficPercent" not in isvc["spec"]["predictor"]

        v2 = publish_checkpoint(client, tiny_checkpoint, model, alias="challenger")
        status = cluster.wait("sentiment", lambda s: (s.get("canary") or {}).get("weight") == 50)
        assert status["phase"] == "Progressing" and status["canary"]["version"] == v2.version
        cluster.wait("sentiment", lambda s: True)  # KServe reports the canary revision
        assert cluster.isvc("sentiment")["spec"]["predictor"]["canaryTrafficPercent"] == 50
        assert status.get("metricsBaseline", {}).get("version") == v2.version

        status = cluster.wait(
            "sentiment", lambda s: s.get("phase") == "Stable" and not s.get("canary")
        )
        assert status["stable"]["version"] == v2.version, status
        assert [h["outcome"] for h in status["history"]] == ["Promoted"]
        assert client.get_model(model).aliases["champion"] == v2.version
        assert status["metricsAvailable"] is True
        cluster.wait("sentiment", lambda s: True)
        assert "canaryTrafficPercent" not in cluster.isvc("sentiment")["spec"]["predictor"]

        cluster.metrics.accuracy["canary"] = 0.55
        v3 = publish_checkpoint(client, tiny_checkpoint, model, alias="challenger")
        status = cluster.wait("sentiment", lambda s: s.get("phase") == "RolledBack")
        assert status["history"][-1]["version"] == v3.version
        assert "accuracy" in status["history"][-1]["reason"]
        assert client.get_version(model, v3.version).tags.get(TAG_OUTCOME)
        assert client.get_model(model).aliases["champion"] == v2.version
        cluster.wait("sentiment", lambda s: True)
        assert "canaryTrafficPercent" not in cluster.isvc("sentiment")["spec"]["predictor"]
    # RBAC: every call this namespaced, standalone run made is in rbac.NAMESPACED_RUN, and
    # every rule there was used (peering and cluster scanning are off in this run).
    made = {(c.group, c.resource, c.verb) for c in cluster.emulator.calls if c.agent != TEST_AGENT}
    granted = rbac.allowed(rbac.NAMESPACED_RUN)
    assert made <= granted, made - granted
    assert granted - made == rbac.NOT_EXERCISED
    reasons = cluster.events("sentiment")
    told = [(e["reason"], e["message"]) for e in cluster.event_objects("sentiment")]
    assert reasons.count("Promoted") == 1, told
    assert "RolledBack" in reasons and "Initialized" in reasons
