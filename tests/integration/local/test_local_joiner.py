"""Local mode's feedback path is the cluster's: the joiner, fed by the router's CloudEvents.

Real MLflow, real predictors, router and joiner processes, tokens on. A label posted to the
router is counted once, at the joiner (not by the predictors, not by the router), and is
paired: a canary-served request was scored on stable too (share pairing) and the joiner
re-scores a stable-served one on the canary (pairing on label, through the arms file the
platform writes). A repeated label counts nothing. A dead joiner is reported and holds
the rollout instead of letting it decide on labels that are not counted, and the same tick
starts it again.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from modeldeploy.cli import main
from modeldeploy.operator.local.cli import load_manifest
from modeldeploy.operator.local.platform import JOINER, token_files
from modeldeploy.operator.local.runner import LocalOperator
from modeldeploy.operator.local.state import StateDir
from modeldeploy.operator.metrics.scrape import parse_samples
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.serving.auth import read_tokens
from modeldeploy.serving.contract.names import LABELLED_PREDICTIONS, PAIRED_OUTCOMES_TOTAL
from modeldeploy.tools.checkpoints import build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
MODEL = "local-joiner"
DEPLOYMENT = "sentiment-demo"


def _counts(url: str) -> dict[str, float]:
    """Sum of the two series the analysis reads, per (series, role or "pair")."""
    out: dict[str, float] = defaultdict(float)
    for name, labels, value in parse_samples(httpx.get(url, timeout=10).text):
        if name == LABELLED_PREDICTIONS and labels.get("deployment") == DEPLOYMENT:
            out[f"labelled/{labels['role']}"] += value
        elif name == PAIRED_OUTCOMES_TOTAL and labels.get("deployment") == DEPLOYMENT:
            out["paired"] += value
    return dict(out)


def test_a_label_posted_to_the_router_counts_once_at_the_joiner_and_pairs(
    mlflow_server, tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, MODEL, alias="champion")
    state = tmp_path / "state"
    op = LocalOperator(StateDir(state), registry_uri=mlflow_server.url, out=print)
    manifest = load_manifest(ROOT / "examples/local-demo.yaml")
    manifest["spec"]["model"]["name"] = MODEL
    op.apply(manifest)
    label_token = read_tokens(token_files(StateDir(state))[0])[0].decode()
    bearer = {"Authorization": "Bearer " + label_token}
    try:
        assert op.tick().status.phase == "Stable"
        publish_checkpoint(client, build("tiny-distilbert"), MODEL, alias="challenger")
        status = op.tick().status
        assert status.phase == "Progressing" and status.canary and status.canary.weight == 50
        router, target = op.router_url(), op.target()
        assert router is not None
        arms = op.platform.table[DEPLOYMENT]
        joiner = arms[JOINER].url
        endpoints = op.platform.metrics_endpoints(target)
        assert joiner + "/metrics" in endpoints
        # The predictors leave labels to the joiner: no feedback route there at all.
        for role in ("stable", "canary"):
            label = {"request_id": "x", "label": 1}
            assert httpx.post(f"{arms[role].url}/v1/feedback", json=label).status_code == 404

        # Enough requests that both arms serve some (50%), each labelled once and again.
        ids = []
        for i in range(12):
            body = {"instances": [f"a warm, funny and moving film, take {i}"]}
            answer = httpx.post(f"{router}/v1/models/{MODEL}:predict", json=body, timeout=60)
            assert answer.status_code == 200, answer.text
            ids.append(answer.headers["x-request-id"])
        for request_id in ids:
            label = {"request_id": request_id, "label": 1}
            first = httpx.post(f"{router}/v1/feedback", json=label, headers=bearer, timeout=60)
            assert first.status_code == 200 and first.json()["counted"] is True, first.text
            again = httpx.post(f"{router}/v1/feedback", json=label, headers=bearer, timeout=60)
            assert again.status_code == 200 and again.json()["counted"] is False, again.text

        at_joiner = _counts(joiner + "/metrics")
        n = len(ids)
        # Every label: once per arm (share pairing or the joiner's re-score) and one pair.
        assert at_joiner == {"labelled/stable": n, "labelled/canary": n, "paired": n}
        total: dict[str, float] = defaultdict(float)
        for url in endpoints:
            for key, value in _counts(url).items():
                total[key] += value
        assert dict(total) == at_joiner  # nothing counted anywhere else

        # One prediction still waiting for its label when the joiner dies.
        body = {"instances": ["a warm, funny and moving film, labelled late"]}
        answer = httpx.post(f"{router}/v1/models/{MODEL}:predict", json=body, timeout=60)
        waiting = answer.headers["x-request-id"]
        time.sleep(0.5)  # the router's event posts are in the background; then a commit

        # The joiner dies: reported, nothing concluded, the canary keeps its traffic.
        os.kill(arms[JOINER].pid, signal.SIGKILL)  # no clean stop: no last commit
        deadline = time.monotonic() + 10
        while arms[JOINER].alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        health = op.platform.health(target)
        assert not health[JOINER].ready and "joiner process exited" in health[JOINER].reason
        assert not op.platform.is_ready(target)
        record = op.tick()
        assert record.status.phase == "Progressing" and record.status.canary
        assert record.status.canary.weight == 50
        assert record.decision == "continue"  # PENDING: no decision on missing labels
        assert "joiner process exited" in record.status.message
        assert "the rollout holds" in record.status.message
        # The same tick re-applied the arms (the healthy predictors adopted), which started
        # the joiner again on its ports, with its book read back from its state file: a label
        # counted before is still a duplicate, the waiting one counts, and so do new ones.
        stable_pid = arms["stable"].pid
        again = op.platform.table[DEPLOYMENT]
        assert again[JOINER].alive() and again[JOINER].url == joiner
        assert again["stable"].pid == stable_pid
        restarted = [e for e in op.data["events"] if e["reason"] == "StableRestarted"]
        assert restarted and "joiner process exited" in restarted[-1]["message"]
        label = {"request_id": ids[0], "label": 1}
        again = httpx.post(f"{router}/v1/feedback", json=label, headers=bearer, timeout=60)
        assert again.status_code == 200 and again.json()["counted"] is False, again.text
        label = {"request_id": waiting, "label": 1}
        late = httpx.post(f"{router}/v1/feedback", json=label, headers=bearer, timeout=60)
        assert late.status_code == 200 and late.json()["counted"] is True, late.text
        body = {"instances": ["a warm, funny and moving film, once more"]}
        answer = httpx.post(f"{router}/v1/models/{MODEL}:predict", json=body, timeout=60)
        label = {"request_id": answer.headers["x-request-id"], "label": 1}
        first = httpx.post(f"{router}/v1/feedback", json=label, headers=bearer, timeout=60)
        assert first.status_code == 200 and first.json()["counted"] is True, first.text
        # The counters start again at zero (Prometheus reads the reset); two labels since.
        assert _counts(joiner + "/metrics") == {"labelled/stable": 2, "labelled/canary": 2,
                                                "paired": 2}  # fmt: skip
        assert main(["local", "status", "--state-dir", str(state)]) == 0
        assert f"PROCESS  {DEPLOYMENT} joiner: running" in capsys.readouterr().out
    finally:
        assert main(["local", "down", "--state-dir", str(state)]) == 0
    assert StateDir(state).load_processes() == {}
