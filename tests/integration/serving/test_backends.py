"""Loading every family, and the ONNX paths' accuracy parity gate, in process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from modeldeploy.serving.backends.base import ParityFailed
from modeldeploy.serving.backends.onnx_backend import optimized_path
from modeldeploy.serving.config import ModelSource, ServeConfig
from modeldeploy.serving.server import build
from modeldeploy.tools.checkpoints import load_split
from modeldeploy.tools.checkpoints.evaluate import predict_directory

pytestmark = pytest.mark.slow

TEXTS = ["an absolute delight from start to finish", "a tedious, empty exercise"]


def _config(path: Path, runtime: str = "torch", **kw) -> ServeConfig:
    return ServeConfig(
        source=ModelSource(model_dir=path),
        deployment=f"test-{path.name}-{runtime}",
        runtime=runtime,
        threads=2,
        **kw,
    )


def _probabilities(model, texts) -> np.ndarray:
    response, headers = asyncio.run(model({"instances": texts}, {"x-request-id": "rid"}))
    assert headers["x-request-id"] == "rid"
    names = model.labels
    return np.array([[p["probabilities"][n] for n in names] for p in response["predictions"]])


@pytest.mark.parametrize("recipe", ["tiny", "tiny-distilbert", "tiny-roberta"])
def test_every_family_loads_and_matches_the_reference(checkpoint, recipe):
    path = checkpoint(recipe)
    model = build(_config(path))
    family = {"tiny": "bert", "tiny-distilbert": "distilbert", "tiny-roberta": "roberta"}[recipe]
    assert model.checkpoint.family == family
    np.testing.assert_allclose(
        _probabilities(model, TEXTS), predict_directory(path, TEXTS), atol=1e-4
    )


def test_onnx_passes_parity_on_the_held_out_split_and_matches_torch(
    tiny_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path))  # force a fresh export and check
    model = build(_config(tiny_checkpoint, "onnx"))
    assert not model.backend.optimized_from_cache
    assert optimized_path(model.backend.graph).is_file()  # cached for the next start
    restarted = build(_config(tiny_checkpoint, "onnx"))
    assert restarted.backend.optimized_from_cache
    np.testing.assert_allclose(
        _probabilities(restarted, TEXTS), _probabilities(model, TEXTS), atol=1e-6
    )
    report = model.parity_report
    assert report is not None and report.passed
    assert report.n == len(load_split("validation"))
    assert report.agreement > 0.99
    np.testing.assert_allclose(
        _probabilities(model, TEXTS), predict_directory(tiny_checkpoint, TEXTS), atol=1e-4
    )
    assert list(tmp_path.glob("onnx/*/model.parity-*.json"))


def test_a_runtime_that_loses_too_much_accuracy_is_refused(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path))
    with pytest.raises(ParityFailed, match=r"refusing to serve: onnx accuracy .* EXCEEDS"):
        build(_config(tiny_checkpoint, "onnx", parity_tolerance=-1.0))


def test_int8_minilm_keeps_accuracy_on_the_held_out_split(good_checkpoint, tmp_path, monkeypatch):
    # Dynamic INT8 costs MiniLM about 1-2 points here (0.021 in one clean build, less in
    # another), so the default gate (0.01) refuses it; an operator who accepts that sets
    # --parity-tolerance, as this test does.
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path))
    model = build(_config(good_checkpoint, "onnx-int8", parity_tolerance=0.03))
    report = model.parity_report
    assert report is not None and report.passed, report
    assert report.reference_accuracy > 0.7
    assert abs(report.drop) <= 0.03
