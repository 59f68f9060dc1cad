"""Pairing on label arrival, against real routers in front of two real predictor processes.

Stable serves ``tiny`` (version 1), canary ``tiny-distilbert`` (version 2), both with token
files (local mode's layout, so ids are the router's signed ones) and no share-based
pairing: every request is scored by one arm only, and a pair can only come from a label.
Judged by the counts the analysis reads: ``modeldeploy_paired_outcomes_total`` on the
router and ``modeldeploy_labelled_predictions_total`` on each arm.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.auth import CONTROL_TOKEN_FILE, LABEL_TOKEN_FILE, write_token_file
from modeldeploy.tools.checkpoints import build
from tests.integration.serving_router.test_label_auth import call, counts
from tests.support.processes import ManagedProcess, free_port, http_ok, start_process

pytestmark = pytest.mark.slow
PY = sys.executable
TEXT = "a warm, funny and beautifully made film"
PAIRED = "modeldeploy_paired_outcomes_total"
LABELLED = "modeldeploy_labelled_predictions_total"
ROUTED = "modeldeploy_router_requests_total"


@dataclass
class Arms:
    urls: dict[str, str]
    auth_args: list[str]
    label: str
    control: str
    root: Path
    started: list[ManagedProcess]

    def router(self, name: str, *options: str) -> str:
        """Start a router in front of both arms (weight 0: stable serves everything)."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [PY, "-m", "modeldeploy.serving.router", "--stable", self.urls["stable"],
                "--canary", self.urls["canary"], "--weight", "0", "--paired-share", "0",
                "--deployment", "demo", "--port", str(port), "--seed", "3",
                *self.auth_args, *options]  # fmt: skip
        self.started.append(
            start_process(
                name, argv, self.root / "logs", lambda: http_ok(f"{url}/healthz"), timeout=60
            )
        )
        return url


@pytest.fixture(scope="module")
def arms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arms]:
    root = tmp_path_factory.mktemp("pair-on-label")
    label_file = write_token_file(root / "auth" / LABEL_TOKEN_FILE)
    control_file = write_token_file(root / "auth" / CONTROL_TOKEN_FILE)
    auth_args = ["--label-token-file", str(label_file), "--control-token-file", str(control_file)]
    started: list[ManagedProcess] = []
    try:
        urls = {}
        for role, checkpoint, version in (
            ("stable", "tiny", "1"),
            ("canary", "tiny-distilbert", "2"),
        ):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            argv = [PY, "-m", "modeldeploy.serving", "--model-dir", str(build(checkpoint)),
                    "--name", "m", "--deployment", "demo", "--role", role,
                    "--model-version", version, "--http-port", str(port), "--grpc-port", "0",
                    "--threads", "1", *auth_args]  # fmt: skip
            started.append(
                start_process(
                    f"predictor-{role}",
                    argv,
                    root / "logs",
                    lambda url=url: http_ok(f"{url}/v2/health/ready"),
                    timeout=180,
                )
            )
            urls[role] = url
        yield Arms(
            urls,
            auth_args,
            label_file.read_text().strip(),
            control_file.read_text().strip(),
            root,
            started,
        )
    finally:
        for proc in reversed(started):
            proc.stop()


def predict(router: str, texts: list[str] | None = None) -> str:
    status, answer, _ = call(
        "POST", f"{router}/v1/models/m:predict", {"instances": texts or [TEXT]}
    )
    assert status == 200, answer
    return str(answer["request_id"])


def label(arms: Arms, router: str, item_id: str, value: int = 1) -> dict[str, object]:
    status, body, _ = call(
        "POST", f"{router}/v1/feedback", {"request_id": item_id, "label": value}, arms.label
    )
    assert status == 200, body
    return dict(body)


def rescores(router: str) -> float:
    """Requests the router sent to an arm because a label arrived (purpose ``label``)."""
    with urllib.request.urlopen(router + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == ROUTED and s.labels.get("purpose") == "label"
    )


def snapshot(arms: Arms, router: str) -> dict[str, float]:
    out = {role: counts(url, LABELLED) for role, url in arms.urls.items()}
    out["paired"] = counts(router, PAIRED)
    out["rescored"] = rescores(router)
    return out


def test_a_label_for_a_request_one_arm_scored_is_paired_once(arms: Arms) -> None:
    router = arms.router("router-default")
    stable_only = predict(router)
    before = snapshot(arms, router)
    assert label(arms, router, stable_only) == {"request_id": stable_only, "counted": True}
    after = snapshot(arms, router)
    # One re-score on the canary, one paired outcome, and the label reached both arms.
    assert after == {
        "stable": before["stable"] + 1,
        "canary": before["canary"] + 1,
        "paired": before["paired"] + 1,
        "rescored": before["rescored"] + 1,
    }
    # A replayed label: acknowledged, nothing re-scored, paired or labelled again.
    assert label(arms, router, stable_only)["counted"] is False
    assert snapshot(arms, router) == after

    # The other way round: a canary-only request is re-scored on stable. Two texts, one
    # re-score: the second item's label finds both arms already.
    status, _, _ = call("PUT", f"{router}/router/weights", {"canary": 100}, arms.control)
    assert status == 200
    canary_only = predict(router, [TEXT, "a dull, tedious film"])
    for index in (0, 1):
        assert label(arms, router, f"{canary_only}/{index}", index)["counted"] is True
    final = snapshot(arms, router)
    assert final == {
        "stable": after["stable"] + 2,
        "canary": after["canary"] + 2,
        "paired": after["paired"] + 2,
        "rescored": after["rescored"] + 1,
    }


def test_the_rescore_budget_is_honoured_and_the_rest_stay_unpaired_labels(arms: Arms) -> None:
    rate = 1.0
    router = arms.router("router-budget", "--pair-on-label-rate", str(rate))
    ids = [predict(router) for _ in range(8)]
    before = snapshot(arms, router)
    started = time.monotonic()
    for item_id in ids:
        assert label(arms, router, item_id)["counted"] is True
    elapsed = time.monotonic() - started
    after = snapshot(arms, router)
    paired = after["paired"] - before["paired"]
    # A bucket of one second's worth (1), refilled at the rate while the labels went in.
    allowed = 1 + int(elapsed * rate)
    assert 1 <= paired <= allowed, (paired, elapsed)
    assert after["rescored"] - before["rescored"] == paired
    assert after["canary"] - before["canary"] == paired
    # Every label still counts, on the arm that served it, as an unpaired label.
    assert after["stable"] - before["stable"] == len(ids)
    print(f"budget {rate:g}/s: {len(ids)} labels in {elapsed:.2f} s, {paired:g} paired")
