"""Triton's own v2 answers, logged as KServe's agent logs them, joined by a real joiner.

Triton echoes the request's ``id`` and signs nothing, so the client first gets a signed id
from the joiner (``POST /v1/ids``); an answer under an id nobody signed is refused.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.registry.triton import build_repository
from modeldeploy.serving.auth import CONTROL_TOKEN_FILE, LABEL_TOKEN_FILE, write_token_file
from modeldeploy.serving.contract.joiner import logger_url
from modeldeploy.serving.triton import TritonServer
from modeldeploy.tools.checkpoints import build, load_split
from modeldeploy.tools.checkpoints.evaluate import predict_directory
from tests.support.joiner_cloudevents import Agent
from tests.support.processes import free_port, http_ok, start_process

pytestmark = pytest.mark.slow
MODEL = "reviews"


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("joiner-triton")
    # As publishing lays it out (Triton version 1, registry version 7 inside), answering in
    # the label view: LABEL, LABEL_INDEX and NUM_LABELS, no PROBABILITIES.
    build_repository(build("tiny"), root / "repo", MODEL, "7")
    label_file = write_token_file(root / "auth" / LABEL_TOKEN_FILE)
    control_file = write_token_file(root / "auth" / CONTROL_TOKEN_FILE)
    port, events = free_port(), free_port()
    joiner = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "modeldeploy.serving.joiner",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--events-port",
        str(events),
        "--label-token-file",
        str(label_file),
        "--control-token-file",
        str(control_file),
    ]
    proc = start_process("joiner", argv, root / "logs", lambda: http_ok(f"{joiner}/healthz"))
    try:
        with TritonServer(
            root / "repo", log_path=root / "tritonserver.log", response_detail="label"
        ) as server:
            server.load(MODEL)
            yield {
                "triton": server.http_url,
                "joiner": joiner,
                "events": f"http://127.0.0.1:{events}",
                "token": label_file.read_text().strip(),
            }
    finally:
        proc.stop()


def infer(triton: str, request_id: str, texts: list[str]) -> tuple[bytes, bytes]:
    request = json.dumps(
        {
            "id": request_id,
            "inputs": [
                {"name": "TEXT", "datatype": "BYTES", "shape": [len(texts), 1], "data": texts}
            ],
        }
    ).encode()
    status, answer = post(f"{triton}/v2/models/{MODEL}/versions/1/infer", request)
    assert status == 200, answer
    assert {o["name"] for o in answer["outputs"]} == {"LABEL", "LABEL_INDEX", "NUM_LABELS"}
    return request, json.dumps(answer).encode()


def log(setup: dict[str, str], request: bytes, answer: bytes) -> str:
    url = logger_url(setup["events"], "demo", "canary", "7")
    outcome = ""
    for headers, body in Agent("demo-predictor-triton").events(request, answer):
        status, reply = post(url, body, headers)
        assert status == 202
        outcome = reply["outcome"]
    return outcome


def test_triton_answers_under_a_minted_id_are_joined(setup: dict[str, str]) -> None:
    auth = {"Authorization": f"Bearer {setup['token']}"}
    split = load_split("test")
    texts, truth = list(split.texts[:6]), [int(x) for x in split.labels[:6]]
    reference = predict_directory(build("tiny"), texts).argmax(axis=1)
    status, minted = post(f"{setup['joiner']}/v1/ids", {}, auth)
    assert status == 200
    request_id = minted["request_id"]
    assert log(setup, *infer(setup["triton"], request_id, texts)) == "recorded"
    correct = 0
    for i, label in enumerate(truth):
        status, body = post(
            f"{setup['joiner']}/v1/feedback",
            {"request_id": f"{request_id}/{i}", "label": label},
            auth,
        )
        assert (status, body["counted"]) == (200, True), body
        correct += int(reference[i] == label)
    with urllib.request.urlopen(f"{setup['joiner']}/metrics", timeout=10) as response:
        text = response.read().decode()
    line = (
        'modeldeploy_labelled_predictions_total{correct="true",deployment="demo",'
        'model_version="7",role="canary",source="feedback"}'
    )
    assert f"{line} {float(correct)}" in text


def test_a_triton_answer_under_an_id_nobody_signed_is_refused(setup: dict[str, str]) -> None:
    assert log(setup, *infer(setup["triton"], "client-chosen-id", ["fine"])) == "not_issued"
