"""The joiner as a real process, fed as KServe's agent feeds it, joining labels for two real
predictor processes that stand for two replicas of one endpoint (stable, version 1).

Every prediction is made by a real predictor (with the platform's tokens, so it issues signed
ids); its request and 200 answer are then posted to the joiner as the agent of that replica's
pod would post them (tests/support/joiner_cloudevents.py, from KServe's pkg/logger). What the
joiner counts is checked against what the replicas answered and the true labels.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.auth import CONTROL_TOKEN_FILE, LABEL_TOKEN_FILE, write_token_file
from modeldeploy.serving.contract.ids import IdIssuer
from modeldeploy.serving.contract.joiner import logger_url
from modeldeploy.tools.checkpoints import build, load_split
from tests.support.joiner_cloudevents import Agent
from tests.support.processes import ManagedProcess, free_port, http_ok, start_process
from tests.support.two_arms import flood_labels

pytestmark = pytest.mark.slow
PY = sys.executable
FLOOD = 50_000
DECISION_SERIES = ("modeldeploy_labelled_predictions_total", "modeldeploy_paired_outcomes_total")


@dataclass
class Stack:
    replicas: list[str]
    joiner: str
    events: str
    label: str
    control: str
    joiner_proc: ManagedProcess


def call(
    url: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def counts(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in DECISION_SERIES and s.value
    }


def rss_kib(proc: ManagedProcess) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("joiner")
    label_file = write_token_file(root / "auth" / LABEL_TOKEN_FILE)
    control_file = write_token_file(root / "auth" / CONTROL_TOKEN_FILE)
    auth = ["--label-token-file", str(label_file), "--control-token-file", str(control_file)]
    started: list[ManagedProcess] = []
    try:
        replicas = []
        for name in ("a", "b"):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            argv = [
                PY,
                "-m",
                "modeldeploy.serving",
                "--model-dir",
                str(build("tiny")),
                "--name",
                "demo",
                "--deployment",
                "demo",
                "--role",
                "stable",
                "--model-version",
                "1",
                "--http-port",
                str(port),
                "--grpc-port",
                "0",
                "--threads",
                "1",
                *auth,
                *(["--labels-at-joiner"] if name == "b" else []),
            ]
            started.append(
                start_process(
                    f"replica-{name}",
                    argv,
                    root / "logs",
                    lambda url=url: http_ok(f"{url}/v2/health/ready"),
                    timeout=180,
                )
            )
            replicas.append(url)
        port, events_port = free_port(), free_port()
        joiner = f"http://127.0.0.1:{port}"
        argv = [
            PY,
            "-m",
            "modeldeploy.serving.joiner",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--events-port",
            str(events_port),
            "--label-rate",
            "100",
            "--label-burst",
            "100",
            *auth,
        ]
        proc = start_process(
            "joiner", argv, root / "logs", lambda: http_ok(f"{joiner}/healthz"), timeout=60
        )
        started.append(proc)
        yield Stack(
            replicas,
            joiner,
            f"http://127.0.0.1:{events_port}",
            label_file.read_text().strip(),
            control_file.read_text().strip(),
            proc,
        )
    finally:
        for proc in reversed(started):
            proc.stop()


def serve_and_log(stack: Stack, replica: int, text: str) -> dict[str, Any]:
    """One prediction by a real replica, then its agent's two CloudEvents to the joiner."""
    request = json.dumps({"instances": [text]}).encode()
    status, answer = call(f"{stack.replicas[replica]}/v1/models/demo:predict", raw=request)
    assert status == 200, answer
    agent = Agent(f"demo-predictor-{'ab'[replica]}")
    url = logger_url(stack.events, "demo", "stable", "1")
    for headers, body in agent.events(request, json.dumps(answer).encode()):
        status, outcome = call(url, raw=body, headers=headers)
        assert status == 202, outcome
    return answer


def test_labels_for_predictions_of_either_replica_are_joined(stack: Stack) -> None:
    split = load_split("test")
    texts, truth = list(split.texts[:20]), [int(x) for x in split.labels[:20]]
    answers = [serve_and_log(stack, i % 2, t) for i, t in enumerate(texts)]
    before = counts(stack.joiner)
    expected: Counter[str] = Counter()
    for answer, label in zip(answers, truth, strict=True):
        status, body = call(
            f"{stack.joiner}/v1/feedback",
            {"request_id": answer["request_id"], "label": label},
            stack.label,
        )
        assert (status, body["counted"]) == (200, True), body
        expected[str(answer["predictions"][0]["label_index"] == label).lower()] += 1
    after = counts(stack.joiner)
    got = {
        dict(labels)["correct"]: value - before.get((name, labels), 0)
        for (name, labels), value in after.items()
        if name == DECISION_SERIES[0] and dict(labels)["role"] == "stable"
    }
    assert {k: v for k, v in got.items() if v} == dict(expected)


def test_a_replica_that_leaves_labels_to_the_joiner_takes_none(stack: Stack) -> None:
    answer = serve_and_log(stack, 1, "labelled only at the joiner")
    body = {"request_id": answer["request_id"], "label": 1}
    status, reply = call(f"{stack.replicas[1]}/v1/feedback", body, stack.label)
    assert (status, reply) == (404, {"detail": "Not Found"})  # no feedback route at all
    status, reply = call(f"{stack.replicas[0]}/v1/feedback", body, stack.label)
    assert (status, reply["code"]) == (404, "unknown_id")  # replica a still has its route


def label(stack: Stack, request_id: str, value: int) -> tuple[int, Any]:
    return call(f"{stack.joiner}/v1/feedback", {"request_id": request_id, "label": value},
                stack.label)  # fmt: skip


def test_anonymous_wrong_token_replay_and_forged_ids_change_no_count(stack: Stack) -> None:
    answer = serve_and_log(stack, 1, "a film I would watch again")
    rid = answer["request_id"]
    before = counts(stack.joiner)
    assert call(f"{stack.joiner}/v1/feedback", {"request_id": rid, "label": 1})[0] == 401
    wrong = "wrong-token-0123456789abcdef"
    assert call(f"{stack.joiner}/v1/feedback", {"request_id": rid, "label": 1}, wrong)[0] == 403
    forged = IdIssuer(b"an-outsiders-key-0123456789", "stable").issue()
    status, body = call(
        f"{stack.joiner}/v1/feedback", {"request_id": forged, "label": 1}, stack.label
    )
    assert (status, body["code"]) == (404, "not_issued")
    # A forged "response" posted to the events port (what the NetworkPolicy keeps out) for a
    # forged id stores nothing; for the real id it cannot overwrite what the replica served.
    flipped = {**answer, "request_id": forged}
    for headers, body_ in Agent("intruder").events(b"{}", json.dumps(flipped).encode()):
        call(logger_url(stack.events, "demo", "stable", "1"), raw=body_, headers=headers)
    assert (
        call(f"{stack.joiner}/v1/feedback", {"request_id": forged, "label": 1}, stack.label)[0]
        == 404
    )
    assert counts(stack.joiner) == before
    assert label(stack, rid, 1)[1]["counted"] is True
    replay = label(stack, rid, 0)
    assert replay == (200, {"request_id": rid, "counted": False, "source": "feedback"})
    # The same id served again (the replica issues a fresh one; a re-logged old one is a
    # duplicate): the labelled id stays counted once.
    for headers, body_ in Agent("demo-predictor-b").events(b"{}", json.dumps(answer).encode()):
        call(logger_url(stack.events, "demo", "stable", "1"), raw=body_, headers=headers)
    assert label(stack, rid, 1)[1]["counted"] is False
    delta = sum(counts(stack.joiner).values()) - sum(before.values())
    assert delta == 1


@pytest.mark.long
def test_a_flood_of_labels_keeps_memory_flat_and_the_joiner_up(stack: Stack) -> None:
    for _ in range(200):  # warm the allocator on the same path first
        call(f"{stack.joiner}/v1/feedback", {"request_id": "warm", "label": 1})
    before, rss_before = counts(stack.joiner), rss_kib(stack.joiner_proc)
    started = time.monotonic()
    statuses = asyncio.run(flood_labels(stack.joiner, stack.label, FLOOD))
    elapsed = time.monotonic() - started
    rss_after = rss_kib(stack.joiner_proc)
    print(
        f"\njoiner flood: {FLOOD} label posts in {elapsed:.1f}s ({FLOOD / elapsed:.0f}/s), "
        f"statuses {dict(statuses)}, joiner RSS {rss_before} -> {rss_after} KiB"
    )
    assert sum(statuses.values()) == FLOOD
    by_token = Counter(i % 3 for i in range(FLOOD))
    assert (statuses[401], statuses[403]) == (by_token[0], by_token[1])
    assert statuses[404] + statuses[429] == by_token[2] and statuses[429] > 0
    assert rss_after - rss_before < 20 * 1024, "joiner memory grew with the flood"
    assert counts(stack.joiner) == before
    assert stack.joiner_proc.alive()
    time.sleep(1.5)  # the label token's bucket refills
    answer = serve_and_log(stack, 0, "still joining after the flood")
    status, body = call(
        f"{stack.joiner}/v1/feedback", {"request_id": answer["request_id"], "label": 1}, stack.label
    )
    assert (status, body["counted"]) == (200, True)
