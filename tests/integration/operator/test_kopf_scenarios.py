"""kopf scenarios beyond the happy path: an invalid spec, and the operator killed mid-canary.

Same world as ``test_kopf_operator.py`` (emulated API server, real MLflow, the kserve
platform, real verdicts from /metrics the test controls).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from modeldeploy.operator.api.crd import build_crd
from modeldeploy.operator.api.openapi import to_jsonschema
from modeldeploy.registry import decisions
from modeldeploy.registry.base import TAG_OUTCOME
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from tests.integration.operator.kopf_world import MD_PATH, Cluster, http, model_name, resource

pytestmark = pytest.mark.slow


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
    # Layer 2, the operator: the emulator does not validate, so both reach the operator.
    for body in (bad_steps, bad_runtime):
        http(f"{cluster.url}{MD_PATH}", "POST", body)
    with cluster.operator():
        for name, field in (("bad-steps", "spec.rollout.steps"), ("bad-runtime", "spec.runtime")):
            status = cluster.wait(name, lambda s: s.get("phase") == "Failed")
            assert field in status["message"], status["message"]
            degraded = condition(status, "Degraded")
            assert degraded["status"] == "True" and field in degraded["message"]
            assert condition(status, "Ready")["status"] == "False"
        time.sleep(3)  # a few more ticks: the Event is posted once, not on every tick
        for name, field in (("bad-steps", "spec.rollout.steps"), ("bad-runtime", "spec.runtime")):
            told = [e for e in cluster.event_objects(name) if e["reason"] == "InvalidSpec"]
            assert len(told) == 1 and told[0]["type"] == "Warning", told
            assert field in told[0]["message"]
        assert cluster.isvc("bad-steps") is None and cluster.isvc("bad-runtime") is None

        # Fixed, it is applied: the same resource goes to Stable and gets its InferenceService.
        fix = {"spec": {"rollout": {"steps": [25, 100]}}}
        http(f"{cluster.url}{MD_PATH}/bad-steps", "PATCH", fix, merge=True)
        status = cluster.wait("bad-steps", lambda s: s.get("phase") == "Stable")
        assert condition(status, "Degraded")["status"] == "False"
        assert cluster.isvc("bad-steps") is not None
        assert cluster.md("bad-runtime")["status"]["phase"] == "Failed"
    assert cluster.isvc("bad-runtime") is None


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Record each call of ``decisions.<name>`` (the operator runs in this process)."""
    calls: list[str] = []
    real: Callable[..., Any] = getattr(decisions, name)

    def wrapper(client: Any, model: str, version: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(version)
        return real(client, model, version, *args, **kwargs)

    monkeypatch.setattr(decisions, name, wrapper)
    return calls


def test_operator_killed_mid_canary_resumes_from_the_status_and_finishes_once(
    cluster: Cluster, tiny_checkpoint, request, monkeypatch
) -> None:
    model = model_name(request)
    client = MlflowRegistry(request.getfixturevalue("mlflow_server").url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    promoted, rejected = counting(monkeypatch, "promote"), counting(monkeypatch, "reject")
    http(f"{cluster.url}{MD_PATH}", "POST", resource("sentiment", model, steps=[25, 50, 100]))

    with cluster.operator():
        cluster.wait("sentiment", lambda s: s.get("phase") == "Stable")
        v2 = publish_checkpoint(client, tiny_checkpoint, model, alias="challenger")
        before = cluster.wait("sentiment", lambda s: (s.get("canary") or {}).get("step", 0) >= 1)
    cluster.runner = None  # stopped mid-canary (its last status patch has landed)
    stopped = cluster.md("sentiment")["status"]
    assert stopped["phase"] == "Progressing" and stopped["canary"]["version"] == v2.version
    assert stopped["canary"]["step"] >= 1 and stopped["canary"]["weight"] >= 50
    assert promoted == [] and rejected == []

    seen: list[dict[str, Any]] = []

    def done(status: dict[str, Any]) -> bool:
        seen.append(status)
        return status.get("phase") == "Stable" and not status.get("canary")

    with cluster.operator():  # a new operator: it knows only the status and the registry
        status = cluster.wait("sentiment", done, timeout=60)
        time.sleep(2)  # more ticks after the promotion must not act on it again
        status = cluster.md("sentiment")["status"]

    canaries = [s["canary"] for s in seen if s.get("canary")]
    assert {c["version"] for c in canaries} == {v2.version}
    assert {c["startTime"] for c in canaries} == {before["canary"]["startTime"]}
    steps = [c["step"] for c in canaries]
    assert steps[0] >= stopped["canary"]["step"] and steps == sorted(steps)  # never reset
    assert status["stable"]["version"] == v2.version
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [(v2.version, "Promoted")]
    assert promoted == [v2.version] and rejected == []  # decided once, never both ways
    assert client.get_model(model).aliases["champion"] == v2.version
    assert client.get_version(model, v2.version).tags.get(TAG_OUTCOME)
    reasons = cluster.events("sentiment")
    told = [(e["reason"], e["message"]) for e in cluster.event_objects("sentiment")]
    assert reasons.count("Promoted") == 1 and reasons.count("Promoting") == 1, told
    assert "RollingBack" not in reasons and "RolledBack" not in reasons, told
    assert reasons.count("RolloutStarted") == 1, told
