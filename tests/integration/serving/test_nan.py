"""NaN logits are an error response, counted, and the server keeps serving."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.integration.serving.conftest import start_predictor
from tests.integration.serving.scrape import scrape, value

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nan_predictor(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of tiny whose classifier bias is NaN: every forward pass yields NaN logits."""
    path = tmp_path_factory.mktemp("nan-checkpoint") / "model"
    shutil.copytree(tiny_checkpoint, path)
    weights = load_file(path / "model.safetensors")
    bias = next(k for k in weights if k.startswith("classifier") and k.endswith("bias"))
    weights[bias] = torch.full_like(weights[bias], float("nan"))
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    predictor = start_predictor(tmp_path_factory.mktemp("nan-logs"), path, name="nan-predictor")
    try:
        yield predictor
    finally:
        predictor.process.stop()


def test_nan_logits_are_a_counted_5xx_and_the_server_stays_up(nan_predictor):
    for _ in range(2):
        r = httpx.post(nan_predictor.v1, json={"instances": ["anything"]}, timeout=30)
        assert r.status_code == 500
        assert r.json()["code"] == "nan_output" and "NaN" in r.json()["error"]
    samples = scrape(nan_predictor.url)
    assert value(samples, "modeldeploy_nan_outputs_total") == 2
    assert value(samples, "modeldeploy_requests_total", outcome="error") == 2
    assert value(samples, "modeldeploy_predictions_total") == 0
    assert httpx.get(f"{nan_predictor.url}/v2/health/ready").status_code == 200
