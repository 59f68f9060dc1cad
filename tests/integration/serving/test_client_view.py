"""The label view (``--response-detail label``, the default): a real predictor's answers on
every protocol carry the predicted class and the request id, and nothing that names its
version or fingerprints its weights (probabilities, confidence, token counts).

The version is a string that appears nowhere else (``v-secret-7``), so a search of every
body and header for it is a real check. The full view is what the other files in this
folder read (their predictors run ``--response-detail full``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as tritonhttp

from modeldeploy.tools.checkpoints.evaluate import predict_directory
from tests.integration.serving.conftest import Predictor, start_predictor

VERSION = "v-secret-7"
TEXTS = ["a wonderful, moving film", "dull and far too long"]
LABEL_FIELDS = {"id", "label", "label_index"}
HIDDEN = ("model_version", "probabilities", "confidence", "tokens", "truncat")


@pytest.fixture(scope="module")
def label_predictor(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Predictor]:
    predictor = start_predictor(
        tmp_path_factory.mktemp("label-view"),
        tiny_checkpoint,
        ["--model-version", VERSION, "--role", "canary", "--response-detail", "label"],
        name="label-view-predictor",
    )
    try:
        yield predictor
    finally:
        predictor.process.stop()


@pytest.fixture(scope="module")
def expected(tiny_checkpoint: Path) -> list[int]:
    return [int(i) for i in predict_directory(tiny_checkpoint, TEXTS).argmax(axis=1)]


def reveals(response: httpx.Response) -> list[str]:
    """Where a response names the version or carries a hidden field (empty: nowhere)."""
    found = [f"header {k}" for k, v in response.headers.items() if VERSION in v]
    # kserve's REST v2 writes the optional field as null when a model gives none.
    text = response.text.replace('"model_version":null', "")
    found += [f"body has {word!r}" for word in (VERSION, *HIDDEN) if word in text]
    return found


def test_v1_answer_is_the_label_and_the_request_id(label_predictor, expected) -> None:
    response = httpx.post(label_predictor.v1, json={"instances": TEXTS}, timeout=30)
    assert response.status_code == 200 and reveals(response) == []
    body = response.json()
    assert set(body) == {"predictions", "request_id", "model_name", "labels"}
    assert body["labels"] == ["negative", "positive"]
    assert [set(p) for p in body["predictions"]] == [LABEL_FIELDS] * 2
    assert [p["label_index"] for p in body["predictions"]] == expected
    rid = body["request_id"]
    assert [p["id"] for p in body["predictions"]] == [f"{rid}/0", f"{rid}/1"]
    assert response.headers["x-request-id"] == rid


def test_v2_json_answer_has_no_version_and_no_probabilities(label_predictor, expected) -> None:
    request = {"id": "v2-json", "inputs": [
        {"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}]}  # fmt: skip
    response = httpx.post(label_predictor.v2, json=request, timeout=30)
    assert response.status_code == 200 and reveals(response) == []
    body = response.json()
    assert body.get("model_version") is None  # v2: "model_version" is optional
    assert body["id"] == "v2-json" and body["parameters"] == {"num_labels": 2}
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    assert set(outputs) == {"label", "label_index"} and outputs["label_index"] == expected


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_gets_the_label_outputs_even_when_it_asks_for_more(
    label_predictor, expected, binary: bool
) -> None:
    client = tritonhttp.InferenceServerClient(f"127.0.0.1:{label_predictor.http_port}")
    headers = None if binary else {"Content-Type": "application/json"}
    tensor = tritonhttp.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(
        np.array([t.encode() for t in TEXTS], dtype=np.object_), binary_data=binary
    )

    def infer(*names: str) -> Any:
        outputs = [tritonhttp.InferRequestedOutput(n, binary_data=binary) for n in names]
        return client.infer("classifier", [tensor], outputs=outputs or None, headers=headers)

    try:
        result = infer()
        assert [o["name"] for o in result.get_response()["outputs"]] == ["label", "label_index"]
        assert result.as_numpy("label_index").tolist() == expected
        assert result.get_response().get("model_version") is None
        asked = infer("label", "probabilities")  # asking for them gets the label view still
        assert asked.as_numpy("probabilities") is None
        assert asked.as_numpy("label_index").tolist() == expected
    finally:
        client.close()


def test_grpc_answer_has_no_version_and_no_probabilities(label_predictor, expected) -> None:
    """tritonclient.grpc cannot share this process with kserve (NOTES.md): a subprocess."""
    script = (
        "import json, sys, numpy as np, tritonclient.grpc as g\n"
        "c = g.InferenceServerClient(f'127.0.0.1:{sys.argv[1]}')\n"
        "t = g.InferInput('text', [2], 'BYTES')\n"
        "t.set_data_from_numpy(np.array([s.encode() for s in sys.argv[2:]], dtype=np.object_))\n"
        "r = c.infer('classifier', [t], request_id='req-grpc').get_response()\n"
        "print(json.dumps({'id': r.id, 'version': r.model_version,\n"
        "    'outputs': [o.name for o in r.outputs],\n"
        "    'parameters': sorted(r.parameters), 'text': str(r)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(label_predictor.grpc_port), *TEXTS],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["id"], result["version"]) == ("req-grpc", "")
    assert result["outputs"] == ["label", "label_index"]
    assert result["parameters"] == ["num_labels"]
    assert VERSION not in result["text"] and "probabilities" not in result["text"]


def test_metadata_feedback_and_errors_name_no_version(label_predictor) -> None:
    metadata = httpx.get(f"{label_predictor.url}/v2/models/classifier", timeout=30)
    assert metadata.status_code == 200 and reveals(metadata) == []
    assert [o["name"] for o in metadata.json()["outputs"]] == ["label", "label_index"]

    answer = httpx.post(label_predictor.v1, json={"instances": [TEXTS[0]]}, timeout=30).json()
    feedback = httpx.post(
        f"{label_predictor.url}/v1/feedback",
        json={"request_id": answer["request_id"], "label": "positive"},
        timeout=30,
    )
    assert feedback.status_code == 200 and reveals(feedback) == []
    assert feedback.json() == {
        "request_id": answer["request_id"], "counted": True, "source": "feedback"}  # fmt: skip

    bad = [
        httpx.post(label_predictor.v1, json={"instances": ["   "]}, timeout=30),
        httpx.post(label_predictor.v1, content=b"{not json", timeout=30),
        httpx.post(label_predictor.v2, json={"inputs": []}, timeout=30),
        httpx.post(f"{label_predictor.url}/v1/feedback", json={"request_id": "x"}, timeout=30),
    ]
    for response in bad:
        assert 400 <= response.status_code < 500, response.text
        assert VERSION not in response.text
        assert not [k for k, v in response.headers.items() if VERSION in v]
