"""Router and prober as real processes in front of two real predictor processes.

Stable serves ``tiny`` (version 1), canary ``tiny-distilbert`` (version 2). What the router
and the prober count is checked against ``predict_directory`` on the same texts, so the
test fails if a prediction, an id or a label goes astray anywhere on the way.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.router.pairing import paired_outcome
from modeldeploy.tools.checkpoints import build, load_split
from modeldeploy.tools.checkpoints.evaluate import predict_directory
from tests.support.processes import free_port, http_ok

pytestmark = pytest.mark.slow
PY = sys.executable


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read()), dict(response.headers)


def samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def start_predictor(start: Callable[..., Any], directory: Path, role: str, version: str) -> str:
    port = free_port()
    argv = [PY, "-m", "modeldeploy.serving", "--model-dir", str(directory), "--name", "m",
            "--deployment", "demo", "--role", role, "--model-version", version,
            "--http-port", str(port), "--grpc-port", "0", "--threads", "1",
            "--response-detail", "full"]  # fmt: skip  # the full view: answers name the arm
    url = f"http://127.0.0.1:{port}"
    start(f"predictor-{role}", argv, lambda: http_ok(f"{url}/v2/health/ready"), timeout=120)
    return url


def test_router_and_prober_count_what_the_real_arms_predict(
    process_starter: Callable[..., Any], tmp_path: Path
) -> None:
    directories = {"stable": build("tiny"), "canary": build("tiny-distilbert")}
    stable = start_predictor(process_starter, directories["stable"], "stable", "1")
    canary = start_predictor(process_starter, directories["canary"], "canary", "2")
    split = load_split("test")
    texts, labels = list(split.texts[:24]), [int(x) for x in split.labels[:24]]
    reference = {r: predict_directory(d, texts).argmax(axis=1) for r, d in directories.items()}

    # --- router: 50/50, every canary request also scored by stable ---------------------
    port = free_port()
    router = f"http://127.0.0.1:{port}"
    process_starter(
        "router",
        [
            PY,
            "-m",
            "modeldeploy.serving.router",
            "--stable",
            stable,
            "--canary",
            canary,
            "--weight",
            "50",
            "--paired-share",
            "100",
            "--pair-on-label-rate",  # only share pairing: stable-served labels stay unpaired
            "0",
            "--deployment",
            "demo",
            "--port",
            str(port),
            "--seed",
            "5",
            "--response-detail",
            "full",
        ],
        lambda: http_ok(f"{router}/healthz"),
    )
    routed = {}
    for i, text in enumerate(texts[:16]):
        status, answer, headers = post(f"{router}/v1/models/m:predict", {"instances": [text]})
        assert status == 200
        role = headers["x-modeldeploy-arm"]
        assert answer["model_version"] == {"stable": "1", "canary": "2"}[role]
        assert answer["predictions"][0]["label_index"] == reference[role][i]
        routed[answer["request_id"]] = (i, role)
    assert 0 < sum(role == "canary" for _, role in routed.values()) < 16
    expected: Counter[str] = Counter()
    for request_id, (i, role) in routed.items():
        status, body, _ = post(
            f"{router}/v1/feedback", {"request_id": request_id, "label": labels[i]}
        )
        assert status == 200 and body["counted"]
        assert set(body["arms"]) == ({"stable", "canary"} if role == "canary" else {"stable"})
        if role == "canary":
            ok = {r: reference[r][i] == labels[i] for r in ("stable", "canary")}
            expected[paired_outcome(ok["stable"], ok["canary"])] += 1
    got = {
        s["outcome"]: v
        for s, v in samples(f"{router}/metrics", "modeldeploy_paired_outcomes_total")
    }
    assert {k: v for k, v in got.items() if v} == dict(expected)
    # Each arm joined the label itself (its own feedback store, same request id).
    for role, url in (("stable", stable), ("canary", canary)):
        joined = sum(
            v for s, v in samples(f"{url}/metrics", "modeldeploy_labelled_predictions_total")
            if s["source"] == "feedback"
        )  # fmt: skip
        assert joined == (16 if role == "stable" else sum(expected.values()))

    # --- prober: every golden example once, to both arms --------------------------------
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        "".join(
            json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels, strict=True)
        )
    )
    port = free_port()
    prober = f"http://127.0.0.1:{port}"
    process_starter(
        "prober",
        [
            PY,
            "-m",
            "modeldeploy.serving.prober",
            "--stable",
            stable,
            "--canary",
            canary,
            "--deployment",
            "demo",
            "--model-name",
            "m",
            "--rate",
            "50",
            "--golden",
            str(golden),
            "--max-probes",
            str(len(texts)),
            "--port",
            str(port),
        ],
        lambda: http_ok(f"{prober}/healthz"),
    )
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sent = samples(f"{prober}/metrics", "modeldeploy_prober_probes_total")
        if sent and sent[0][1] >= len(texts):
            break
        time.sleep(0.2)
    correct = {
        (s["role"], s["model_version"], s["correct"]): v
        for s, v in samples(f"{prober}/metrics", "modeldeploy_labelled_predictions_total")
    }
    for role, version in (("stable", "1"), ("canary", "2")):
        right = int((reference[role] == labels).sum())
        assert correct.get((role, version, "true"), 0) == right
        assert correct.get((role, version, "false"), 0) == len(texts) - right
    expected = Counter(
        paired_outcome(reference["stable"][i] == labels[i], reference["canary"][i] == labels[i])
        for i in range(len(texts))
    )
    got = {
        s["outcome"]: v
        for s, v in samples(f"{prober}/metrics", "modeldeploy_paired_outcomes_total")
        if s["source"] == "probe"
    }
    assert {k: v for k, v in got.items() if v} == dict(expected)
