"""The exported repository in the real tritonserver from nvidia-pytriton.

Version 1 is the ``tiny`` BERT and version 2 the ``tiny-distilbert`` checkpoint, exported
under one model name, so the side-by-side check also covers a second architecture.
Parity is against ``predict_directory`` (transformers, the reference the predictor
is also held to) on the whole held-out test split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modeldeploy.serving.triton import TritonServer, classify, export_repository
from modeldeploy.tools.checkpoints import build, load_split
from modeldeploy.tools.checkpoints.evaluate import predict_directory

pytestmark = pytest.mark.slow

MODEL = "reviews"


@pytest.fixture(scope="module")
def checkpoints() -> dict[int, Path]:
    return {1: build("tiny"), 2: build("tiny-distilbert")}


@pytest.fixture(scope="module")
def triton(
    tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[int, Path]
) -> Iterator[TritonServer]:
    root = tmp_path_factory.mktemp("triton")
    for version, directory in checkpoints.items():
        export_repository(directory, root / "repo", MODEL, version)
    with TritonServer(root / "repo", log_path=root / "tritonserver.log") as server:
        server.load(MODEL)
        yield server


@pytest.fixture(scope="module")
def test_texts() -> list[str]:
    return list(load_split("test").texts)


@pytest.mark.parametrize("version", [1, 2])
def test_outputs_match_reference_predictions_on_test_set(
    triton: TritonServer, checkpoints: dict[int, Path], test_texts: list[str], version: int
) -> None:
    reference = predict_directory(checkpoints[version], test_texts)
    result = classify(triton.http_url, MODEL, test_texts, version=version)

    assert result.model_version == str(version)
    assert result.probabilities.shape == reference.shape
    assert np.array_equal(result.probabilities.argmax(axis=1), reference.argmax(axis=1))
    assert np.abs(result.probabilities - reference).max() < 1e-4
    names = {0: "negative", 1: "positive"}
    assert result.labels == [names[int(i)] for i in reference.argmax(axis=1)]


def test_second_version_is_served_beside_the_first(
    triton: TritonServer, checkpoints: dict[int, Path], test_texts: list[str]
) -> None:
    assert triton.model_ready(MODEL, 1)
    assert triton.model_ready(MODEL, 2)
    texts = test_texts[:32]
    first = classify(triton.http_url, MODEL, texts, version=1)
    second = classify(triton.http_url, MODEL, texts, version=2)
    # Two different networks: same inputs, different probabilities, each its own version.
    assert (first.model_version, second.model_version) == ("1", "2")
    assert not np.allclose(first.probabilities, second.probabilities)


def test_invalid_utf8_is_an_error_response_and_server_stays_up(triton: TritonServer) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(triton.http_url.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[b"\xff\xfe bad"]], dtype=np.object_))
        with pytest.raises(InferenceServerException, match="UTF-8"):
            client.infer(MODEL, [tensor], model_version="1")
    finally:
        client.close()
    assert classify(triton.http_url, MODEL, ["a fine film"], version=1).labels


def test_unloaded_model_stops_answering(tmp_path: Path, checkpoints: dict[int, Path]) -> None:
    export_repository(checkpoints[1], tmp_path / "repo", "solo", 1)
    with TritonServer(tmp_path / "repo") as server:
        server.load("solo")
        assert server.model_ready("solo", 1)
        server.unload("solo")
        assert not server.model_ready("solo", 1)
    assert server.pid is None
