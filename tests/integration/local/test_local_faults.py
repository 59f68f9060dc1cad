"""Faults injected into REAL local-mode processes (real MLflow, predictors, router).

- the canary predictor is SIGKILLed at 50% under traffic: the next tick takes its traffic
  away and rolls back with the exit code; the router is never restarted; then the stable
  predictor is SIGKILLed and the next tick starts it again, then the router;
- a candidate whose stored artifact is altered cannot start: it is retried a bounded
  number of times, then rejected with the file name, in the status, an Event and the
  registry;
- the operator is SIGKILLed while a predictor starts: the half-started predictor is in
  ``processes.json``, a new operator adopts it, and ``local down`` stops everything, even
  a predictor whose record was lost;
- predictors and the router listen on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from modeldeploy.cli import main
from modeldeploy.operator.local.cli import load_manifest
from modeldeploy.operator.local.procs import pid_alive
from modeldeploy.operator.local.runner import LocalOperator
from modeldeploy.operator.local.state import StateDir
from modeldeploy.registry.decisions import TAG_OUTCOME, TAG_REASON
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.tools.checkpoints import build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _manifest(model: str) -> dict:
    manifest = load_manifest(ROOT / "examples/local-demo.yaml")
    manifest["spec"]["model"]["name"] = model
    return manifest


def _operator(state: Path, url: str, model: str) -> LocalOperator:
    op = LocalOperator(StateDir(state), registry_uri=url, out=print)
    op.apply(_manifest(model))
    return op


def _listening(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net shows them) a socket listens on at ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, state = fields[1], fields[3]
            if state == "0A" and int(address.rsplit(":", 1)[1], 16) == port:
                found.add(address.rsplit(":", 1)[0])
    return found


class Traffic(threading.Thread):
    """Steady requests to the router; remembers when each one was sent and answered.

    A request is judged by when it was *sent*: one sent before the tick that moved the
    traffic, to the dead canary, may be answered after it on a busy machine, and is not a
    request "sent after the tick"."""

    def __init__(self, router: str, model: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{router}/v1/models/{model}:predict"
        self.results: list[tuple[float, float, int]] = []  # (sent, answered, status)
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.halt.is_set():
                sent = time.monotonic()
                try:
                    code = client.post(self.url, json={"instances": ["a fine film"]}).status_code
                except httpx.HTTPError:
                    code = 0
                self.results.append((sent, time.monotonic(), code))
                time.sleep(0.05)

    def failed(self, sent_after: float = 0.0, answered_before: float = float("inf")) -> int:
        return sum(
            1
            for sent, answered, code in self.results
            if sent >= sent_after and answered < answered_before and code != 200
        )


@pytest.mark.long
def test_a_killed_canary_loses_its_traffic_at_once_and_is_rolled_back(
    mlflow_server, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    model = "faults-kill"
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    state = tmp_path / "state"
    op = _operator(state, mlflow_server.url, model)
    traffic: Traffic | None = None
    try:
        assert op.tick().status.phase == "Stable"
        v2 = publish_checkpoint(client, build("tiny-distilbert"), model, alias="challenger")
        assert op.tick().status.phase == "Progressing"
        arms = op.platform.table["sentiment-demo"]
        router, canary = arms["router"], arms["canary"]
        for rec in (router, arms["stable"], canary):  # loopback only
            assert _listening(rec.port) == {"0100007F"}, (rec.name, _listening(rec.port))
        assert op.platform.read_traffic(op.target()) == 50
        traffic = Traffic(router.url, model)
        traffic.start()
        time.sleep(3)
        os.kill(canary.pid, signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(0.5)
        first = op.tick().status  # the next tick notices
        noticed = time.monotonic()
        assert first.phase == "RollingBack", first.message
        assert first.message == "canary process exited (code -9, SIGKILL)"
        assert op.platform.read_traffic(op.target()) == 0  # traffic left it on that tick
        done = op.tick().status
        assert done.phase == "RolledBack" and "exited (code -9, SIGKILL)" in done.message
        time.sleep(3)
        traffic.halt.set()
        traffic.join(timeout=60)
        late = [(round(t - killed, 3), round(a - killed, 3), c) for t, a, c in traffic.results
                if c != 200 and a >= noticed]  # fmt: skip
        assert traffic.failed(sent_after=noticed) == 0, (round(noticed - killed, 3), late)
        assert traffic.failed(answered_before=killed) == 0  # none before the kill
        print(
            f"canary SIGKILLed: {traffic.failed()} of {len(traffic.results)} requests failed, "
            f"all within {noticed - killed:.1f}s between the kill and the tick that saw it"
        )
        assert op.platform.table["sentiment-demo"]["router"].pid == router.pid  # no restart
        tags = client.get_version(model, v2.version).tags
        assert tags[TAG_OUTCOME] == "rejected" and "exited (code -9, SIGKILL)" in tags[TAG_REASON]
        # The stable arm dies too: the next tick starts it again.
        stable = op.platform.table["sentiment-demo"]["stable"]
        os.kill(stable.pid, signal.SIGKILL)
        time.sleep(0.5)
        assert op.tick().status.phase == "RolledBack"
        events = StateDir(state).load()["events"]
        assert any(e["reason"] == "StableRestarted" and "SIGKILL" in e["message"] for e in events)
        again = op.platform.table["sentiment-demo"]["stable"]
        assert again.pid != stable.pid and op.platform.is_ready(op.target())
        assert httpx.post(traffic.url, json={"instances": ["ok"]}, timeout=60).status_code == 200
        # And the router: started again on its port.
        os.kill(router.pid, signal.SIGKILL)
        time.sleep(0.5)
        op.tick()
        assert op.platform.table["sentiment-demo"]["router"].port == router.port
        assert httpx.post(traffic.url, json={"instances": ["ok"]}, timeout=60).status_code == 200
    finally:
        if traffic is not None:
            traffic.halt.set()
        assert main(["local", "down", "--state-dir", str(state)]) == 0


def test_a_corrupt_candidate_is_rejected_naming_the_file_after_bounded_attempts(
    mlflow_server, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    model = "faults-corrupt"
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    copy = tmp_path / "candidate"
    shutil.copytree(tiny_checkpoint, copy)
    bad = publish_checkpoint(client, copy, model, alias="challenger")
    stored = Path(bad.source) / "tokenizer_config.json"
    text = stored.read_text()
    stored.write_text(text.replace("[UNK]", "[UNQ]") if "[UNK]" in text else text[::-1])
    state = tmp_path / "state"
    op = _operator(state, mlflow_server.url, model)
    try:
        now = datetime.now(UTC)
        phases = []
        for _ in range(8):  # the clock jumps past each backoff
            status = op.tick(now).status
            phases.append(status.phase)
            if status.phase == "RolledBack":
                break
            now += timedelta(seconds=60)
        assert status.phase == "RolledBack", phases
        assert "tokenizer_config.json" in status.message, status.message
        assert status.history[-1].outcome == "RolledBack"
        tags = client.get_version(model, bad.version).tags
        assert tags[TAG_OUTCOME] == "rejected" and "tokenizer_config.json" in tags[TAG_REASON]
        events = StateDir(state).load()["events"]
        starts = [e for e in events if e["reason"] == "CanaryStartFailed"]
        assert len(starts) == 2 and "tokenizer_config.json" in starts[-1]["message"]
        logs = list((state / "logs").glob("sentiment-demo-canary-*.log"))
        assert len(logs) == 3, logs  # three attempts, bounded
        for _ in range(3):  # and it is not started again
            now += timedelta(seconds=60)
            assert op.tick(now).status.phase == "RolledBack"
        assert len(list((state / "logs").glob("sentiment-demo-canary-*.log"))) == 3
    finally:
        assert main(["local", "down", "--state-dir", str(state)]) == 0


OPERATOR = "import sys; from modeldeploy.cli import main; sys.exit(main(sys.argv[1:]))"


def test_an_operator_killed_while_a_predictor_starts_leaves_no_orphan(
    mlflow_server, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    model = "faults-orphan"
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    state = tmp_path / "state"
    manifest = tmp_path / "md.yaml"
    manifest.write_text(yaml.safe_dump(_manifest(model)))
    argv = ["local", "apply", "-f", str(manifest), "--registry-uri", mlflow_server.url]
    operator = subprocess.Popen([sys.executable, "-c", OPERATOR, *argv, "--state-dir", str(state)])
    pid = router = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not pid:
            table = StateDir(state).load_processes() if (state / "processes.json").exists() else {}
            pid = (table.get("sentiment-demo", {}).get("stable.starting") or {}).get("pid", 0)
            time.sleep(0.1)
        assert pid, "the operator never recorded the predictor it started"
        operator.send_signal(signal.SIGKILL)  # kill -9 while the predictor starts
        operator.wait()
        assert pid_alive(pid)
        # A new operator adopts the half-started predictor instead of starting another.
        op = _operator(state, mlflow_server.url, model)
        assert op.tick().status.phase == "Stable"
        assert op.platform.table["sentiment-demo"]["stable"].pid == pid
        router = op.platform.table["sentiment-demo"]["router"].pid
        # Records lost altogether: `local down` still finds and stops the processes.
        StateDir(state).save_processes({})
    finally:
        if operator.poll() is None:
            operator.kill()
        assert main(["local", "down", "--state-dir", str(state)]) == 0
    assert pid and not pid_alive(pid) and not pid_alive(router)
    assert json.loads((state / "processes.json").read_text()) == {}
