"""Local mode with real parts: a real MLflow, real predictor processes and the router.

Checks what the demo relies on but does not show: the status survives in the state file,
a restarted `local apply` adopts the processes that still serve the wanted versions and
restarts the ones that died, and `modeldeploy local status|down` work on that state.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from modeldeploy.cli import main
from modeldeploy.operator.local import procs
from modeldeploy.operator.local.cli import load_manifest
from modeldeploy.operator.local.procs import pid_alive
from modeldeploy.operator.local.runner import LocalOperator
from modeldeploy.operator.local.state import StateDir
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.tools.checkpoints import build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
MODEL = "local-resume"


def _operator(state: Path, url: str) -> LocalOperator:
    op = LocalOperator(StateDir(state), registry_uri=url, out=print)
    manifest = load_manifest(ROOT / "examples/local-demo.yaml")
    manifest["spec"]["model"]["name"] = MODEL
    op.apply(manifest)
    return op


def _predict(router: str) -> httpx.Response:
    body = {"instances": ["a warm, funny and moving film"], "id": "t-1"}
    return httpx.post(f"{router}/v1/models/{MODEL}:predict", json=body, timeout=60)


def test_restart_adopts_live_processes_and_restores_dead_ones(
    mlflow_server, tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    client = MlflowRegistry(mlflow_server.url)
    v1 = publish_checkpoint(client, tiny_checkpoint, MODEL, alias="champion").version
    state = tmp_path / "state"
    first = _operator(state, mlflow_server.url)
    try:
        first.restore()
        status = first.tick().status
        assert status.phase == "Stable" and status.stable and status.stable.version == v1
        router = first.router_url()
        assert router is not None
        answer = _predict(router)
        assert answer.status_code == 200
        # The label view (the spec's default): the answer names no version; the platform's
        # process table does, and the router was told it.
        assert set(answer.json()) == {"predictions", "request_id", "model_name", "labels"}
        assert first.platform.table["sentiment-demo"]["stable"].labels["version"] == v1
        stable_pid = first.platform.table["sentiment-demo"]["stable"].pid

        # A second `local apply` (as after `kill -9`): same status, same processes, quiet.
        second = _operator(state, mlflow_server.url)
        second.restore()
        assert second.platform.table["sentiment-demo"]["stable"].pid == stable_pid
        assert not second.tick().changed

        v2 = publish_checkpoint(client, build("tiny-distilbert"), MODEL, alias="challenger").version
        status = second.tick().status
        assert status.phase == "Progressing" and status.canary and status.canary.version == v2
        target = second.target()
        assert second.platform.read_traffic(target) == 50
        assert StateDir(state).load()["status"]["canary"]["weight"] == 50

        # The canary process dies while no operator runs: the next start brings it back.
        procs.stop(second.platform.table["sentiment-demo"]["canary"])
        third = _operator(state, mlflow_server.url)
        assert not third.platform.is_ready(target)
        third.restore()
        assert third.platform.is_ready(target) and third.platform.read_traffic(target) == 50
        assert third.status.phase == "Progressing"

        assert main(["local", "status", "--state-dir", str(state)]) == 0
        shown = capsys.readouterr().out
        assert "PHASE    Progressing" in shown and f"CANARY   {v2}  weight 50%" in shown
    finally:
        assert main(["local", "down", "--state-dir", str(state)]) == 0
    table = StateDir(state).load_processes()
    assert table == {}
    assert not pid_alive(stable_pid)
