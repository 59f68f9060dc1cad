"""v1, v2 REST, v2 gRPC and tritonclient against one real predictor (tiny BERT)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as tritonhttp

from modeldeploy.tools.checkpoints.evaluate import predict_directory

pytestmark = pytest.mark.slow

TEXTS = ["a gorgeous, moving film", "dull, lifeless and far too long"]


@pytest.fixture(scope="module")
def reference(tiny_checkpoint: Path) -> np.ndarray:
    return predict_directory(tiny_checkpoint, TEXTS)


def test_v1_answers_label_probabilities_version_and_the_clients_request_id(
    tiny_predictor, reference
):
    r = httpx.post(tiny_predictor.v1, json={"instances": TEXTS}, headers={"x-request-id": "req-v1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == "req-v1" and r.headers["x-request-id"] == "req-v1"
    assert body["model_version"] == "7"
    assert body["truncation"]["max_length"] == 64
    assert [p["id"] for p in body["predictions"]] == ["req-v1/0", "req-v1/1"]
    probs = np.array(
        [
            [p["probabilities"]["negative"], p["probabilities"]["positive"]]
            for p in body["predictions"]
        ]
    )
    np.testing.assert_allclose(probs, reference, atol=1e-4)
    assert [p["label"] for p in body["predictions"]] == [
        ["negative", "positive"][i] for i in reference.argmax(1)
    ]


def test_v1_without_request_id_gets_a_fresh_one(tiny_predictor):
    body = httpx.post(tiny_predictor.v1, json={"instances": [TEXTS[0]]}).json()
    assert len(body["request_id"]) == 36 and body["predictions"][0]["id"] == body["request_id"]


def test_v2_rest_json_honours_id_and_reports_version(tiny_predictor, reference):
    payload = {
        "id": "req-v2",
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}],
    }
    r = httpx.post(tiny_predictor.v2, json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "req-v2" and body["model_version"] == "7"
    outputs = {o["name"]: o for o in body["outputs"]}
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(2, 2), reference, atol=1e-4
    )
    assert outputs["label_index"]["data"] == reference.argmax(1).tolist()


def test_v2_rest_without_id_gets_one(tiny_predictor):
    payload = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": TEXTS[:1]}]}
    body = httpx.post(tiny_predictor.v2, json=payload).json()
    assert len(body["id"]) == 36


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_http(tiny_predictor, reference, binary):
    client = tritonhttp.InferenceServerClient(f"127.0.0.1:{tiny_predictor.http_port}")
    try:
        assert client.is_server_ready()
        tensor = tritonhttp.InferInput("text", [2], "BYTES")
        tensor.set_data_from_numpy(
            np.array([t.encode() for t in TEXTS], dtype=np.object_), binary_data=binary
        )
        outputs = [
            tritonhttp.InferRequestedOutput(name, binary_data=binary)
            for name in ("label", "probabilities")
        ]
        result = client.infer(
            "classifier",
            [tensor],
            outputs=outputs,
            request_id="req-triton",
            headers=None if binary else {"Content-Type": "application/json"},
        )
    finally:
        client.close()
    assert result.get_response()["id"] == "req-triton"
    np.testing.assert_allclose(result.as_numpy("probabilities"), reference, atol=1e-4)
    labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
    assert labels == [["negative", "positive"][i] for i in reference.argmax(1)]


def test_grpc_with_tritonclient_in_a_subprocess(tiny_predictor, reference):
    probe = Path(__file__).with_name("grpc_probe.py")
    out = subprocess.run(
        [sys.executable, str(probe), str(tiny_predictor.grpc_port), "req-grpc", *TEXTS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["id"] == "req-grpc"
    assert result["model_version"] == "7"
    np.testing.assert_allclose(np.array(result["probabilities"]), reference, atol=1e-4)
    assert result["bad_status"] == "StatusCode.INVALID_ARGUMENT"
