"""Sampled pairing with real processes: two real predictors (stable ``tiny`` v1, canary
``tiny-distilbert`` v2, the platform's tokens) serve independent requests, as two KServe
arms do; each request and answer is posted to a real joiner process as the arm's agent
would post it. The joiner re-scores the drawn ones on the other arm's URL (the arms file).

Checked: with the budget ample, every drawn pair is counted with exactly what the two
predictors answer for that text (scored directly afterwards); in a burst, the re-scores
stay within the token bucket (one second's worth, refilled at ``--pair-rate``); and the
agent's posts are answered without waiting for any re-score.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.contract.joiner import logger_url
from modeldeploy.tools.checkpoints import load_split
from tests.support.joiner_cloudevents import Agent
from tests.support.processes import free_port, http_ok, start_process
from tests.support.two_arms import TwoArms, call, two_arms

pytestmark = pytest.mark.slow
PY = sys.executable
RATE = 3.0


def samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.value
    ]


def outcomes(url: str) -> dict[str, float]:
    got = samples(url, "modeldeploy_joiner_pair_samples_total")
    return {labels["outcome"]: value for labels, value in got}


def post(url: str, headers: dict[str, str], body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def serve(pair: TwoArms, role: str, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One client request to ``role``: the request and the arm's answer."""
    request = {"instances": [text]}
    status, answer, _ = call("POST", f"{pair.urls[role]}/v1/models/m:predict", request)
    assert status == 200, answer
    return request, answer


def log(events: str, role: str, request: dict[str, Any], answer: dict[str, Any]) -> float:
    """The arm's agent posts the request and its answer; the seconds the two posts took."""
    # The agent's URL names the arm's version (the operator writes it); answers name none.
    url = events + logger_url("", "demo", role, {"stable": "1", "canary": "2"}[role])
    started = time.monotonic()
    for headers, body in Agent(f"pod-{role}").events(
        json.dumps(request).encode(), json.dumps(answer).encode()
    ):
        assert post(url, headers, body) == 202
    return time.monotonic() - started


def settle(url: str, drawn: int, timeout_s: float = 60.0) -> dict[str, float]:
    """Wait until every drawn response has an outcome (each re-score is paced and bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = outcomes(url)
        if sum(got.values()) >= drawn or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def quiet(url: str, timeout_s: float = 60.0) -> dict[str, float]:
    """The outcomes once they stop changing for two seconds (the drawn re-scores are done)."""
    deadline = time.monotonic() + timeout_s
    last = outcomes(url)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = outcomes(url)
        if now == last:
            break
        last = now
    return last


def test_sampled_pairs_are_what_the_arms_answer_and_the_budget_holds(tmp_path: Path) -> None:
    texts = list(load_split("test").texts)[:60]
    with two_arms(tmp_path) as pair:
        arms = tmp_path / "arms.json"
        versions = {"stable": "1", "canary": "2"}
        entry = {
            "model": "m",
            "arms": {r: {"url": url, "version": versions[r]} for r, url in pair.urls.items()},
        }
        arms.write_text(json.dumps({"deployments": {"demo": entry}}))
        port, events_port = free_port(), free_port()
        api, events = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{events_port}"
        argv = [PY, "-m", "modeldeploy.serving.joiner", "--host", "127.0.0.1",
                "--port", str(port), "--events-port", str(events_port),
                "--arms-file", str(arms), "--pair-on-label-rate", "0",
                "--pair-share", "1", "--pair-rate", str(RATE), *pair.auth_args]  # fmt: skip
        pair.started.append(
            start_process("joiner", argv, tmp_path / "logs", lambda: http_ok(f"{api}/healthz"))
        )
        # 1. Paced under the budget (one request every 0.5 s, 3 re-scores/s): all paired.
        served: list[tuple[str, str, str]] = []  # (role, text, label it answered)
        post_times = []
        for i, text in enumerate(texts[:16]):
            role = ("stable", "canary")[i % 2]
            request, answer = serve(pair, role, text)
            took = log(events, role, request, answer)
            served.append((role, text, answer["predictions"][0]["label"]))
            post_times.append(took)
            time.sleep(0.5)
        first = settle(api, len(served))
        assert first == {"paired": len(served)}, first
        expected: Counter[tuple[str, str, str, str]] = Counter()
        for role, text, label in served:
            other = "canary" if role == "stable" else "stable"
            _, theirs, _ = call("POST", f"{pair.urls[other]}/v1/models/m:predict",
                                {"instances": [text]})  # fmt: skip
            mine_theirs = (label, theirs["predictions"][0]["label"])
            stable_label, canary_label = mine_theirs if role == "stable" else mine_theirs[::-1]
            expected[("1", "2", stable_label, canary_label)] += 1
        got = {
            (lab["stable_version"], lab["canary_version"], lab["stable_label"],
             lab["canary_label"]): value
            for lab, value in samples(api, "modeldeploy_paired_predictions_total")
        }  # fmt: skip
        assert got == dict(expected)
        # The agent's posts never waited for a re-score (the arms take tens of ms each).
        assert max(post_times) < 1.0, post_times
        # 2. A clump of 40 posts (agents flush together): the bucket (one second's worth)
        # and its refill bound the re-scores; the rest are left unpaired.
        roles = [("stable", "canary")[i % 2] for i in range(40)]
        answered = [serve(pair, role, text) for role, text in zip(roles, texts[16:56], strict=True)]
        started = time.monotonic()
        for role, (request, answer) in zip(roles, answered, strict=True):
            log(events, role, request, answer)
        elapsed = time.monotonic() - started
        after = quiet(api)
        burst_paired = after.get("paired", 0) - len(served)
        # As the observed rate passed the budget fewer were drawn; the bucket held the rest.
        assert burst_paired + after.get("over_budget", 0) <= 40, after
        assert burst_paired <= RATE + RATE * elapsed + 1, (after, elapsed)
        assert after.get("over_budget", 0) > 0, (after, elapsed)
        total = sum(v for _, v in samples(api, "modeldeploy_paired_predictions_total"))
        assert total == after["paired"]
