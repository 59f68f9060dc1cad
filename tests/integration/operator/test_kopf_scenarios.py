"""kopf scenarios beyond the happy path: an invalid spec, and the operator killed mid-canary.

Same world as ``test_kopf_operator.py`` (emulated API server, real MLflow, the kserve
platform, real verdicts from /metrics the test controls). The kill is real: the operator
runs as its own process (``modeldeploy operator run``) and gets SIGKILL mid-canary.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
import pytest
from mlflow import MlflowClient
from mlflow.entities.webhook import WebhookEvent

from modeldeploy.operator.api.crd import build_crd
from modeldeploy.operator.api.openapi import to_jsonschema
from modeldeploy.registry.base import TAG_DECIDED_AT, TAG_OUTCOME
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from tests.integration.operator.kopf_world import (
    MD_PATH,
    NS,
    Cluster,
    http,
    model_name,
    resource,
)
from tests.support.mlflow_server import MlflowServer, start_mlflow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """This module's own MLflow, whose webhook listeners are cached 1 s instead of 60 s.

    So a webhook created mid-test hears every later write (``RegistryWrites``).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_WEBHOOK_CACHE_TTL", "1")
        server = start_mlflow(tmp_path_factory.mktemp("kopf-mlflow"))
    try:
        yield server
    finally:
        server.stop()


def crd_validator() -> jsonschema.Draft7Validator:
    (version,) = build_crd()["spec"]["versions"]
    return jsonschema.Draft7Validator(to_jsonschema(version["schema"]["openAPIV3Schema"]))


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_invalid_spec_fails_with_a_degraded_condition_an_event_and_nothing_applied(
    cluster: Cluster, tiny_checkpoint, request
) -> None:
    model = model_name(request)
    client = MlflowRegistry(request.getfixturevalue("mlflow_server").url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    bad_steps = resource("bad-steps", model, steps=[50, 25, 100])
    bad_runtime = resource("bad-runtime", model)
    bad_runtime["spec"]["runtime"] = "onnx"
    # Layer 1, the CRD schema: the API server refuses an unknown runtime, but not steps
    # out of order (a structural schema cannot say "increasing").
    schema = crd_validator()
    assert schema.is_valid(bad_steps)
    assert not schema.is_valid(bad_runtime)
    # The (emulated) API server enforces layer 1; layer 2, the operator, gets the steps.
    with pytest.raises(urllib.error.HTTPError, match="422"):
        http(f"{cluster.url}{MD_PATH}", "POST", bad_runtime)
    http(f"{cluster.url}{MD_PATH}", "POST", bad_steps)
    with cluster.operator():
        for name, field in (("bad-steps", "spec.rollout.steps"),):
            status = cluster.wait(name, lambda s: s.get("phase") == "Failed")
            assert field in status["message"], status["message"]
            degraded = condition(status, "Degraded")
            assert degraded["status"] == "True" and field in degraded["message"]
            assert condition(status, "Ready")["status"] == "False"
        cluster.wait_ticks("bad-steps", 3)  # more ticks: the Event is posted once
        # the operator exports the condition for alerts (the chart's rules read it)
        degraded = {"namespace": NS, "name": "bad-steps", "type": "Degraded"}
        assert exported("modeldeploy_condition", {**degraded, "status": "True"}) == 1.0
        for name, field in (("bad-steps", "spec.rollout.steps"),):
            told = [e for e in cluster.event_objects(name) if e["reason"] == "InvalidSpec"]
            assert len(told) == 1 and told[0]["type"] == "Warning", told
            assert field in told[0]["message"]
        assert cluster.isvc("bad-steps") is None and cluster.isvc("bad-runtime") is None

        # Fixed, it is applied: the same resource goes to Stable and gets its InferenceService.
        fix = {"spec": {"rollout": {"steps": [25, 100]}, "slo": {"availability": 0.999}}}
        http(f"{cluster.url}{MD_PATH}/bad-steps", "PATCH", fix, merge=True)
        status = cluster.wait("bad-steps", lambda s: s.get("phase") == "Stable")
        assert condition(status, "Degraded")["status"] == "False"
        cluster.wait_ticks("bad-steps", 1)
        assert exported("modeldeploy_condition", {**degraded, "status": "True"}) is None
        assert exported("modeldeploy_condition", {**degraded, "status": "False"}) == 1.0
        objective = {"namespace": degraded["namespace"], "deployment": "bad-steps"}
        assert (
            exported("modeldeploy_slo_objective_ratio", {**objective, "slo": "availability"})
            == 0.999
        )
        assert cluster.isvc("bad-steps") is not None
    assert cluster.isvc("bad-runtime") is None


def exported(name: str, labels: dict[str, str]) -> float | None:
    """A value the in-process operator (``cluster.operator()``) exports for alerts, whatever
    other labels (``reason``) the series has; None when no such series exists."""
    from prometheus_client import REGISTRY

    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


class RegistryWrites:
    """Every registry write as MLflow itself reports it: a webhook to a loopback recorder.

    The operator runs in another process, so "exactly once" is read from the registry's
    side: one delivery per alias set and per version tag set (the stored state alone
    cannot tell a value written twice from one written once).
    """

    def __init__(self, mlflow_url: str, model: str) -> None:
        self.model, self.seen = model, []
        writes = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body["data"].get("name") == writes.model:
                    writes.seen.append((f"{body['entity']}.{body['action']}", body["data"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.client = MlflowClient(mlflow_url)
        url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        events = [WebhookEvent.from_str("model_version_alias.created")]
        events.append(WebhookEvent.from_str("model_version_tag.set"))
        self.webhook = self.client.create_webhook(f"writes-{model}", url, events=events)
        time.sleep(1.5)  # MLflow caches the listeners of an event for 1 s (this module's server)

    def aliases(self, alias: str) -> list[str]:
        return [
            d["version"]
            for e, d in self.seen
            if e.startswith("model_version_alias.") and d["alias"] == alias
        ]

    def tags(self, version: str, key: str) -> list[str]:
        return [
            d["value"]
            for e, d in self.seen
            if e == "model_version_tag.set" and d["version"] == version and d["key"] == key
        ]

    def close(self) -> None:
        self.client.delete_webhook(self.webhook.webhook_id)
        self.server.shutdown()
        self.server.server_close()


def test_operator_killed_mid_canary_resumes_from_the_status_and_finishes_once(
    cluster: Cluster, tiny_checkpoint, request, process_starter, mlflow_server
) -> None:
    model = model_name(request)
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    writes = RegistryWrites(mlflow_server.url, model)
    request.addfinalizer(writes.close)
    http(f"{cluster.url}{MD_PATH}", "POST", resource("sentiment", model, steps=[25, 50, 100]))

    first = cluster.operator_process(process_starter, "operator-1")
    cluster.wait("sentiment", lambda s: s.get("phase") == "Stable")
    v2 = publish_checkpoint(client, tiny_checkpoint, model, alias="challenger")
    before = cluster.wait("sentiment", lambda s: (s.get("canary") or {}).get("step", 0) >= 1)
    first.kill()  # SIGKILL to the process group: no cleanup, no last patch, nothing
    killed_at = datetime.now(UTC).replace(microsecond=0)
    assert first.popen.returncode == -signal.SIGKILL
    stopped = cluster.md("sentiment")["status"]
    assert stopped["phase"] == "Progressing" and stopped["canary"]["version"] == v2.version
    assert stopped["canary"]["step"] >= 1 and stopped["canary"]["weight"] >= 50
    assert client.get_model(model).aliases["champion"] != v2.version
    assert TAG_OUTCOME not in client.get_version(model, v2.version).tags
    assert "Promoted" not in cluster.events("sentiment")

    seen: list[dict[str, Any]] = []

    def done(status: dict[str, Any]) -> bool:
        seen.append(status)
        return status.get("phase") == "Stable" and not status.get("canary")

    # A new operator process: it knows only the status, the registry and kopf's annotations.
    cluster.operator_process(process_starter, "operator-2")
    status = cluster.wait("sentiment", done, timeout=60)
    decided = client.get_version(model, v2.version).tags
    cluster.wait_ticks("sentiment", 3)  # more ticks (and late webhook deliveries) after it
    status = cluster.md("sentiment")["status"]

    canaries = [s["canary"] for s in seen if s.get("canary")]
    assert {c["version"] for c in canaries} == {v2.version}
    assert {c["startTime"] for c in canaries} == {before["canary"]["startTime"]}
    steps = [c["step"] for c in canaries]
    assert steps[0] >= stopped["canary"]["step"] and steps == sorted(steps)  # never reset
    assert status["stable"]["version"] == v2.version
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [(v2.version, "Promoted")]
    # The registry: promoted once, by the second process, and never rejected.
    aliases = client.get_model(model).aliases
    assert aliases["champion"] == v2.version and "challenger" not in aliases
    tags = client.get_version(model, v2.version).tags
    assert tags == decided and tags[TAG_OUTCOME] == "promoted"
    assert killed_at <= datetime.fromisoformat(tags[TAG_DECIDED_AT]) <= datetime.now(UTC)
    assert writes.aliases("champion") == [v2.version], writes.seen
    assert writes.tags(v2.version, TAG_OUTCOME) == ["promoted"], writes.seen
    assert writes.tags(v2.version, TAG_DECIDED_AT) == [tags[TAG_DECIDED_AT]], writes.seen
    # The API server: one transition of each kind, posted by whichever process made it.
    reasons = cluster.events("sentiment")
    told = [(e["reason"], e["message"]) for e in cluster.event_objects("sentiment")]
    assert reasons.count("Promoted") == 1 and reasons.count("Promoting") == 1, told
    assert "RollingBack" not in reasons and "RolledBack" not in reasons, told
    assert reasons.count("RolloutStarted") == 1, told
    # No joiner in this cluster: the canary's start said that labels may not arrive, once
    # (the second process resumed the rollout; it did not start it again).
    assert reasons.count("LabelsMayNotArrive") == 1, told
