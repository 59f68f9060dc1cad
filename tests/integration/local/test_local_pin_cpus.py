"""``local apply --pin-cpus`` with real parts: each arm's predictor on CPUs of its own.

The unit tests (tests/unit/local/test_local_cpus.py) check the choice of sets and the
syscall on this test process. This runs the whole path: a real MLflow, the local operator
with ``pin_cpus``, real predictor processes for stable and canary, and the router and
joiner. It reads every thread's affinity from the kernel, after the predictors have
started their torch and inference threads, so a thread that escaped the pin would show.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from modeldeploy.cli import main
from modeldeploy.operator.local.cli import load_manifest
from modeldeploy.operator.local.cpus import arm_cpus, usable_cpus
from modeldeploy.operator.local.platform import LocalOptions
from modeldeploy.operator.local.runner import LocalOperator
from modeldeploy.operator.local.state import StateDir
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.tools.checkpoints import build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
MODEL = "local-pinned"
DEPLOYMENT = "sentiment-demo"


def _thread_affinities(pid: int) -> dict[int, frozenset[int]]:
    """Every thread of ``pid`` -> the CPUs the kernel lets it run on."""
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    out: dict[int, frozenset[int]] = {}
    for tid in tids:
        try:
            out[tid] = frozenset(os.sched_getaffinity(tid))
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return out


def test_pinned_arms_run_on_disjoint_cpus_and_helpers_float(
    mlflow_server, tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    available = usable_cpus()
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, MODEL, alias="champion")
    state = tmp_path / "state"
    op = LocalOperator(
        StateDir(state),
        registry_uri=mlflow_server.url,
        out=print,
        options=LocalOptions(threads=1, pin_cpus=True),
    )
    manifest = load_manifest(ROOT / "examples/local-demo.yaml")
    manifest["spec"]["model"]["name"] = MODEL
    op.apply(manifest)
    try:
        op.restore()
        assert op.tick().status.phase == "Stable"
        publish_checkpoint(client, build("tiny-distilbert"), MODEL, alias="challenger")
        assert op.tick().status.phase == "Progressing"
        router = op.router_url()
        assert router is not None
        body = {"instances": ["a warm, funny and moving film"]}
        for _ in range(4):  # both arms serve (the router scores the canary's share on both)
            answer = httpx.post(f"{router}/v1/models/{MODEL}:predict", json=body, timeout=60)
            assert answer.status_code == 200, answer.text

        table = op.platform.table[DEPLOYMENT]
        expected = {role: arm_cpus(role, available, 1) for role in ("stable", "canary")}
        assert main(["local", "status", "--state-dir", str(state)]) == 0
        shown = capsys.readouterr().out
        if len(available) < 2:
            # Fewer than two disjoint sets (a 1-CPU machine): the documented fallback,
            # nothing pinned, every arm floating; checked, not skipped.
            assert expected == {"stable": None, "canary": None}
            for role in table:
                assert frozenset(os.sched_getaffinity(table[role].pid)) == available, role
                assert "cpus" not in table[role].labels
            assert "CPUs" not in shown
            return
        stable_cpus, canary_cpus = expected["stable"], expected["canary"]
        assert stable_cpus and canary_cpus and not stable_cpus & canary_cpus
        for role, cpus in (("stable", stable_cpus), ("canary", canary_cpus)):
            record = table[role]
            threads = _thread_affinities(record.pid)
            assert len(threads) > 1  # the inference and server threads exist by now
            assert set(threads.values()) == {cpus}, (role, threads)
            assert record.labels["cpus"] == ",".join(map(str, sorted(cpus)))
            assert f"{DEPLOYMENT} {role}: running" in shown
            assert f"CPUs {','.join(map(str, sorted(cpus)))})" in shown
        for role in set(table) - {"stable", "canary"}:  # router, joiner: everywhere
            assert frozenset(os.sched_getaffinity(table[role].pid)) == available, role
    finally:
        assert main(["local", "down", "--state-dir", str(state)]) == 0
