"""Triton honours the label view: two published arms answer alike, the metrics still differ.

Publishing exports every registry version as Triton version 1 with the registry version in
the unit (``modeldeploy-version.json``, in the manifest). Two real tritonservers, one per
arm as on KServe, each with the environment the operator gives its container:

- label view: an answer carries LABEL, LABEL_INDEX and NUM_LABELS, ``model_version`` "1",
  and is byte for byte the other arm's answer where they agree on the class; asking for
  PROBABILITIES does not bring them back; the model's config names no registry version;
- metrics: each arm's ``modeldeploy_*`` series carry its registry version and role, which
  the analysis' parser reads as the stable and canary arms;
- full view: PROBABILITIES come back, and LABEL_INDEX is their argmax.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modeldeploy.registry.triton import build_repository
from modeldeploy.serving.triton import TritonServer, classify
from modeldeploy.tools.checkpoints import build

pytestmark = pytest.mark.slow

MODEL = "reviews"
DEPLOYMENT = "reviews-demo"
ARMS = {"stable": "3", "canary": "4"}  # role -> registry version
TEXTS = ["a gripping film", "dull and far too long", "fine"]


def _server(root: Path, role: str, view: str) -> TritonServer:
    repo = build_repository(build("tiny"), root / role / "repo", MODEL, ARMS[role])
    env = {"MODELDEPLOY_DEPLOYMENT": DEPLOYMENT, "MODELDEPLOY_ROLE": role}
    return TritonServer(
        repo, log_path=root / role / "tritonserver.log", env=env, response_detail=view
    )


@pytest.fixture(scope="module")
def arms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TritonServer]]:
    root = tmp_path_factory.mktemp("triton-view")
    with _server(root, "stable", "label") as stable, _server(root, "canary", "label") as canary:
        stable.load(MODEL)
        canary.load(MODEL)
        yield {"stable": stable, "canary": canary}


def _raw_infer(server: TritonServer, outputs: list[str] | None = None) -> bytes:
    body: dict[str, object] = {
        "id": "r1",
        "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [len(TEXTS), 1], "data": TEXTS}],
    }
    if outputs is not None:
        body["outputs"] = [{"name": name} for name in outputs]
    request = urllib.request.Request(
        f"{server.http_url}/v2/models/{MODEL}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


def test_label_view_answers_name_no_arm(arms: dict[str, TritonServer]) -> None:
    stable, canary = _raw_infer(arms["stable"]), _raw_infer(arms["canary"])
    answer = json.loads(stable)
    assert answer["model_version"] == "1"
    assert {o["name"] for o in answer["outputs"]} == {"LABEL", "LABEL_INDEX", "NUM_LABELS"}
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["NUM_LABELS"]["data"] == [2] * len(TEXTS)
    assert outputs["LABEL_INDEX"]["datatype"] == "INT64"
    assert stable == canary  # same checkpoint, same classes: nothing else tells them apart


def test_asking_for_probabilities_in_the_label_view_does_not_bring_them(
    arms: dict[str, TritonServer],
) -> None:
    answer = json.loads(_raw_infer(arms["canary"], ["LABEL", "PROBABILITIES"]))
    assert {o["name"] for o in answer["outputs"]} == {"LABEL"}  # what was asked, and there
    result = classify(arms["canary"].http_url, MODEL, TEXTS)
    assert result.probabilities is None and result.model_version == "1"
    assert result.label_indexes is not None and len(result.label_indexes) == len(TEXTS)


def test_the_model_config_a_client_can_read_names_no_registry_version(
    arms: dict[str, TritonServer],
) -> None:
    texts = []
    for server in arms.values():
        url = f"{server.http_url}/v2/models/{MODEL}/config"
        with urllib.request.urlopen(url, timeout=10) as response:
            texts.append(response.read().decode())
        with urllib.request.urlopen(f"{server.http_url}/v2/models/{MODEL}", timeout=10) as r:
            assert json.loads(r.read())["versions"] == ["1"]
    assert json.loads(texts[0]) == json.loads(texts[1])  # its parameters' order varies
    assert "registry_version" not in texts[0]


def test_each_arms_metrics_carry_its_registry_version_and_role(
    arms: dict[str, TritonServer],
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from modeldeploy.operator.metrics.base import AnalysisTarget
    from modeldeploy.operator.metrics.snapshot import collect

    samples = []
    for server in arms.values():
        text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
        samples += [
            (s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name.startswith("modeldeploy_")
        ]
    versions = {(labels["role"], labels["model_version"]) for _, labels, _ in samples}
    assert versions == {("stable", "3"), ("canary", "4")}
    target = AnalysisTarget(DEPLOYMENT, stable_version="3", canary_version="4")
    snapshot = collect(samples, target)
    assert snapshot.stable is not None and snapshot.canary is not None
    assert snapshot.stable.requests["ok"] >= 1 and snapshot.canary.requests["ok"] >= 1


def test_the_full_view_returns_probabilities_whose_argmax_is_the_index(tmp_path: Path) -> None:
    with _server(tmp_path, "canary", "full") as server:
        server.load(MODEL)
        result = classify(server.http_url, MODEL, TEXTS)
    assert result.probabilities is not None and result.probabilities.shape == (len(TEXTS), 2)
    assert result.label_indexes == [int(i) for i in result.probabilities.argmax(axis=1)]
    assert np.allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
