"""Score-both mode against two real predictor processes (``tiny`` and ``tiny-distilbert``).

Every request reaches both arms: each predictor counts it, in its request counter and its
latency histogram alike (the analysis reads those), the client gets the chosen arm's own
answer, and every label is paired without a re-score.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.serving.contract.names import REQUEST_DURATION, REQUESTS
from modeldeploy.serving.router.pairing import paired_outcome
from modeldeploy.tools.checkpoints import build, load_split
from modeldeploy.tools.checkpoints.evaluate import predict_directory
from tests.integration.serving_router.test_real_processes import (
    PY,
    post,
    samples,
    start_predictor,
)
from tests.support.processes import free_port, http_ok

pytestmark = pytest.mark.slow
N = 60


def counted(url: str) -> tuple[float, float]:
    """(requests counted, requests timed) by one predictor, all outcomes."""
    requests = sum(v for _, v in samples(f"{url}/metrics", REQUESTS))  # only v1 is sent
    timed = sum(
        v for s, v in samples(f"{url}/metrics", REQUEST_DURATION + "_count")
        if s["protocol"] == "v1"
    )  # fmt: skip
    return requests, timed


def test_both_real_arms_score_every_request_and_the_client_gets_the_chosen_one(
    process_starter: Callable[..., Any],
) -> None:
    directories = {"stable": build("tiny"), "canary": build("tiny-distilbert")}
    urls = {
        role: start_predictor(process_starter, directories[role], role, version)
        for role, version in (("stable", "1"), ("canary", "2"))
    }
    split = load_split("test")
    texts, labels = list(split.texts[:N]), [int(x) for x in split.labels[:N]]
    reference = {r: predict_directory(d, texts).argmax(axis=1) for r, d in directories.items()}
    before = {role: counted(url) for role, url in urls.items()}
    port = free_port()
    router = f"http://127.0.0.1:{port}"
    process_starter(
        "router",
        [PY, "-m", "modeldeploy.serving.router", "--stable", urls["stable"], "--canary",
         urls["canary"], "--weight", "50", "--score-both", "--deployment", "demo", "--port",
         str(port), "--seed", "3", "--response-detail", "full"],
        lambda: http_ok(f"{router}/healthz"),
    )  # fmt: skip
    routed = {}
    for i, text in enumerate(texts):
        status, answer, headers = post(
            f"{router}/v1/models/m:predict", {"instances": [text], "id": f"q{i}"}
        )
        assert status == 200
        role = headers["x-modeldeploy-arm"]
        assert answer["model_version"] == {"stable": "1", "canary": "2"}[role]
        assert answer["predictions"][0]["label_index"] == reference[role][i]
        routed[f"q{i}"] = i
    # Each label waits for its request's calls, so after it both arms have answered.
    expected: Counter[str] = Counter()
    for request_id, i in routed.items():
        status, body, _ = post(
            f"{router}/v1/feedback", {"request_id": request_id, "label": labels[i]}
        )
        assert status == 200 and body["counted"]
        assert set(body["arms"]) == {"stable", "canary"}
        ok = {r: reference[r][i] == labels[i] for r in ("stable", "canary")}
        expected[paired_outcome(ok["stable"], ok["canary"])] += 1
    got = {
        s["outcome"]: v
        for s, v in samples(f"{router}/metrics", "modeldeploy_paired_outcomes_total")
    }
    assert {k: v for k, v in got.items() if v} == dict(expected)
    assert sum(expected.values()) == N
    rescores = [v for s, v in samples(f"{router}/metrics", "modeldeploy_router_requests_total")
                if s["purpose"] == "label"]  # fmt: skip
    assert sum(rescores) == 0
    # Both predictors counted every request and timed the same number (their warm-up aside).
    deadline = time.monotonic() + 10
    after = {role: counted(url) for role, url in urls.items()}
    while time.monotonic() < deadline and any(
        after[r][0] - before[r][0] < N for r in urls
    ):  # the slower arm's last answer may still be on its way
        time.sleep(0.1)
        after = {role: counted(url) for role, url in urls.items()}
    delta = {r: (after[r][0] - before[r][0], after[r][1] - before[r][1]) for r in urls}
    assert delta["stable"] == delta["canary"]
    assert delta["stable"][0] == N and delta["stable"][1] > 0
