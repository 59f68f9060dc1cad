"""Local mode with authentication on, against real processes: who may label and steer.

`local apply` writes the token files; the router and the joiner it starts then refuse
an anonymous label or weight change, accept the right tokens, and a weight moved by hand
with the control token is set back by the next tick (counted, and a Warning Event).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from modeldeploy.cli import main
from modeldeploy.operator import telemetry
from modeldeploy.operator.local.cli import load_manifest
from modeldeploy.operator.local.platform import token_files
from modeldeploy.operator.local.runner import LocalOperator
from modeldeploy.operator.local.state import StateDir
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.serving.auth import read_tokens
from modeldeploy.tools.checkpoints import build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
MODEL = "local-auth"


def _bearer(path: Path) -> dict[str, str]:
    return {"Authorization": "Bearer " + read_tokens(path)[0].decode()}


def test_labels_and_weights_need_tokens_and_a_hand_moved_weight_is_set_back(
    mlflow_server, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, MODEL, alias="champion")
    state = tmp_path / "state"
    op = LocalOperator(StateDir(state), registry_uri=mlflow_server.url, out=print)
    manifest = load_manifest(ROOT / "examples/local-demo.yaml")
    manifest["spec"]["model"]["name"] = MODEL
    op.apply(manifest)
    label_file, control_file = token_files(StateDir(state))
    try:
        assert op.tick().status.phase == "Stable"
        v2 = publish_checkpoint(client, build("tiny-distilbert"), MODEL, alias="challenger")
        status = op.tick().status
        assert status.phase == "Progressing" and status.canary and status.canary.weight == 50
        router = op.router_url()
        assert router is not None
        target = op.target()

        # Labels: none without a token, none with a wrong one, yes with the label token;
        # the joiner behind the router refuses anonymous labels too, and the predictors
        # take none at all (the joiner counts them, as on KServe).
        body = {"instances": ["a warm, funny and moving film"]}
        answer = httpx.post(f"{router}/v1/models/{MODEL}:predict", json=body, timeout=60)
        assert answer.status_code == 200
        label = {"request_id": answer.headers["x-request-id"], "label": 1}
        url = f"{router}/v1/feedback"
        assert httpx.post(url, json=label, timeout=30).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * 40}
        assert httpx.post(url, json=label, headers=wrong, timeout=30).status_code == 403
        accepted = httpx.post(url, json=label, headers=_bearer(label_file), timeout=30)
        assert accepted.status_code == 200, accepted.text
        for role in ("stable", "canary"):
            arm = op.platform.table["sentiment-demo"][role].url
            assert httpx.post(f"{arm}/v1/feedback", json=label, timeout=30).status_code == 404
        joiner = op.platform.table["sentiment-demo"]["joiner"].url
        assert httpx.post(f"{joiner}/v1/feedback", json=label, timeout=30).status_code == 401

        # Weights: the label token does not steer; the control token does, for one tick.
        weights = f"{router}/router/weights"
        assert httpx.put(weights, json={"canary": 90}, timeout=10).status_code == 401
        by_labeller = httpx.put(weights, json={"canary": 90}, headers=_bearer(label_file))
        assert by_labeller.status_code == 403
        moved = httpx.put(weights, json={"canary": 90}, headers=_bearer(control_file))
        assert moved.status_code == 200 and op.platform.read_traffic(target) == 90
        drift = telemetry.TRAFFIC_DRIFT.labels(target.namespace, target.name)
        before = drift._value.get()
        op.tick()
        assert op.platform.read_traffic(target) == 50
        assert drift._value.get() == before + 1
        events = [e for e in op.data["events"] if e["reason"] == "TrafficDrift"]
        assert events[-1]["type"] == "Warning"
        assert events[-1]["message"] == "router weight was 90%, set back to 50%"
        op.tick()  # nothing moved since: no second correction
        assert drift._value.get() == before + 1 and v2.version == status.canary.version
    finally:
        assert main(["local", "down", "--state-dir", str(state)]) == 0
