"""Local mode probes an undecided canary with the stable version's golden set, by default.

Real MLflow, real predictor, router, joiner and prober processes. The stable version is
published with a golden set (``--golden-set``); the platform starts the prober when the
canary serves, the operator reads its ``source="probe"`` pairs, each golden example is
used at most once even when the prober is killed and started again, and the prober stops
when the rollout is decided. A stable version without a golden set starts no prober and
says so once in an Event.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from modeldeploy.operator.local import procs
from modeldeploy.operator.local.cli import load_manifest
from modeldeploy.operator.local.platform import PROBER
from modeldeploy.operator.local.runner import LocalOperator
from modeldeploy.operator.local.state import StateDir
from modeldeploy.operator.metrics.scrape import parse_samples
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.serving.contract.names import LABELLED_PREDICTIONS, PAIRED_OUTCOMES_TOTAL
from modeldeploy.serving.prober.golden import load_golden
from modeldeploy.tools.checkpoints import build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
DEPLOYMENT = "sentiment-demo"
GOLDEN_SIZE = 60
RATE = 4.0


def _probe_counts(url: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for name, labels, value in parse_samples(httpx.get(url, timeout=10).text):
        if labels.get("deployment") != DEPLOYMENT or labels.get("source") != "probe":
            continue
        if name == LABELLED_PREDICTIONS:
            out[f"labelled/{labels['role']}"] += value
        elif name == PAIRED_OUTCOMES_TOTAL:
            out["paired"] += value
    return dict(out)


def _health(url: str) -> dict:
    return httpx.get(url + "/healthz", timeout=10).json()["deployments"].get(DEPLOYMENT, {})


def _wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _operator(mlflow_url: str, state: Path, model: str) -> LocalOperator:
    op = LocalOperator(StateDir(state), registry_uri=mlflow_url, out=print)
    manifest = load_manifest(ROOT / "examples/local-demo.yaml")
    manifest["spec"]["model"]["name"] = model
    manifest["spec"]["rollout"]["prober"] = {"ratePerSecond": RATE}
    op.apply(manifest)
    return op


@pytest.mark.long
def test_the_prober_runs_by_default_and_uses_each_example_once_across_a_restart(
    mlflow_server, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    model = "local-prober"
    golden = load_golden()
    golden_file = tmp_path / "golden.jsonl"
    golden_file.write_text(
        "".join(
            json.dumps({"text": t, "label": lbl}) + "\n"
            for t, lbl in list(zip(golden.texts, golden.labels, strict=True))[:GOLDEN_SIZE]
        )
    )
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion", golden_set=golden_file)
    op = _operator(mlflow_server.url, tmp_path / "state", model)
    try:
        assert op.tick().status.phase == "Stable"
        assert PROBER not in op.platform.table[DEPLOYMENT]  # no canary: no prober
        publish_checkpoint(client, build("tiny-distilbert"), model, alias="challenger")
        assert op.tick().status.phase == "Progressing"
        arms = op.platform.table[DEPLOYMENT]
        assert PROBER in arms and arms[PROBER].alive()
        prober = arms[PROBER].url
        assert prober + "/metrics" in op.platform.metrics_endpoints(op.target())

        # Some probes, then the prober dies; the next tick starts it again.
        _wait(lambda: _health(prober).get("sent", 0) >= 5)
        first = _probe_counts(prober + "/metrics")
        dead = arms[PROBER]
        procs.stop(dead)
        op.tick()
        again = op.platform.table[DEPLOYMENT][PROBER]
        assert again.alive() and again.pid != dead.pid
        _wait(lambda: _health(again.url).get("exhausted") is True)
        second = _probe_counts(again.url + "/metrics")

        # Each arm answered each probe, and no example was used twice across both runs.
        for counts in (first, second):
            assert counts["labelled/stable"] == counts["labelled/canary"] == counts["paired"]
        used = first["paired"] + second["paired"]
        assert 5 <= used <= GOLDEN_SIZE
        left = _health(again.url)
        assert left["left"] == 0 and left["sent"] == second["paired"]

        # The operator reads the probes (no application traffic or labels were sent here):
        # its window, which began at the tick that restarted the prober, holds every pair
        # of the second run, and never more than the examples used.
        record = op.tick()
        while record.observations is None:  # an analysis runs once per interval
            time.sleep(1.0)
            record = op.tick()
        pairs = record.observations.paired
        assert pairs is not None and second["paired"] <= pairs.total <= used

        # Decided (the candidate alias removed by hand here): the prober stops.
        client.delete_alias(model, "challenger")
        op.tick()
        assert PROBER not in op.platform.table[DEPLOYMENT]
        assert not again.alive()
        assert not dead.alive()
    finally:
        op.platform.stop_all()


def test_a_stable_version_without_a_golden_set_starts_no_prober_and_says_so(
    mlflow_server, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    model = "local-no-golden"
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    op = _operator(mlflow_server.url, tmp_path / "state", model)
    try:
        op.tick()
        publish_checkpoint(client, build("tiny-distilbert"), model, alias="challenger")
        assert op.tick().status.phase == "Progressing"
        op.tick()
        assert PROBER not in op.platform.table[DEPLOYMENT]
        idle = [e for e in op.data["events"] if e["reason"] == "ProberIdle"]
        assert [e["message"] for e in idle] == ["no golden set for version 1: prober idle"]
    finally:
        op.platform.stop_all()
