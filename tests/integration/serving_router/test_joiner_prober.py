"""The cluster's prober: inside the joiner process (``--probe``), as the chart runs it.

Real MLflow (the stable version's golden set is published there), two real predictor
processes, and the joiner as a process reading an arms directory written in the operator's
format, with a ``probe`` block. The joiner's one /metrics carries the probes' labelled
predictions and pairs (``source="probe"``) next to its own series; each golden example is
used once, and the prober stops when the set is used up, and when the entry goes away.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.serving.contract.joiner import arms_entry, arms_key
from modeldeploy.serving.prober.golden import load_golden
from modeldeploy.tools.checkpoints import build
from tests.support.processes import free_port, http_ok, start_process
from tests.support.two_arms import metric_sum, two_arms

pytestmark = pytest.mark.slow
GOLDEN_SIZE = 30
RATE = 10.0


def _wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_the_joiner_probes_each_golden_example_once_and_counts_it_on_its_metrics(
    mlflow_server, tmp_path: Path
) -> None:
    golden = load_golden()
    rows = list(zip(golden.texts, golden.labels, strict=True))[:GOLDEN_SIZE]
    golden_file = tmp_path / "golden.jsonl"
    golden_file.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    client = MlflowRegistry(mlflow_server.url)
    stable = publish_checkpoint(client, build("tiny"), "m", golden_set=golden_file).version

    with two_arms(tmp_path) as pair:
        arms_dir = tmp_path / "arms"
        arms_dir.mkdir()
        entry = tmp_path / "arms" / arms_key("ml", "demo")
        port, events = free_port(), free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "modeldeploy.serving.joiner", "--host", "127.0.0.1",
                "--port", str(port), "--events-port", str(events), "--arms-file",
                str(arms_dir), "--probe", *pair.auth_args]  # fmt: skip
        pair.started.append(
            start_process("joiner", argv, tmp_path / "logs", lambda: http_ok(url + "/healthz"))
        )
        # What the operator writes while the canary is undecided. The schedule starts a few
        # seconds on, so that the prober has read the entry and the set by then.
        arms = {"stable": (pair.urls["stable"], stable), "canary": (pair.urls["canary"], "2")}
        probe = {"since": time.time() + 4, "rate": RATE, "registry": mlflow_server.url}
        entry.write_text(arms_entry("demo", "m", arms, probe))

        def state(name: str) -> float:
            return metric_sum(url, "modeldeploy_prober_state", deployment="demo", state=name)

        _wait(lambda: state("exhausted") == 1)
        sent = metric_sum(url, "modeldeploy_prober_probes_total", deployment="demo")
        labelled = "modeldeploy_labelled_predictions_total"
        by_arm = {
            role: metric_sum(url, labelled, deployment="demo", role=role, source="probe")
            for role in ("stable", "canary")
        }
        pairs = metric_sum(url, "modeldeploy_paired_outcomes_total", source="probe")
        # Each probe reached both real predictors and is one pair; never more than the set.
        assert 0 < sent <= GOLDEN_SIZE
        assert by_arm == {"stable": sent, "canary": sent} and pairs == sent
        assert metric_sum(url, "modeldeploy_prober_remaining", deployment="demo") == 0
        time.sleep(1.0)  # used up: nothing more is sent
        assert metric_sum(url, "modeldeploy_prober_probes_total", deployment="demo") == sent

        # The rollout is decided: the operator removes the key; the prober says stopped.
        entry.unlink()
        _wait(lambda: state("stopped") == 1)
