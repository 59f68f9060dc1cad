"""NaN logits at run time are an error response, counted, and the server keeps serving.

A checkpoint that gives NaN on the parity sentences never becomes ready
(test_start_failures.py). This one is broken only for one word that none of those
sentences contains (its embedding row is NaN), so it starts, and a request with that
word gets NaN logits.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from modeldeploy.registry import manifest
from modeldeploy.serving.backends.parity import FINITE_CHECK_TEXTS
from modeldeploy.serving.data import VALIDATION, held_out
from tests.integration.serving.conftest import start_predictor
from tests.integration.serving.scrape import scrape, value

pytestmark = pytest.mark.slow


def unused_word(tokenizer: Tokenizer) -> tuple[str, int]:
    """A whole-word vocabulary entry that no parity sentence uses, and its id."""
    seen: set[int] = set()
    for text in held_out(VALIDATION)[0][:FINITE_CHECK_TEXTS]:
        seen.update(tokenizer.encode(text).ids)
    for word, index in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):
        whole = index not in seen and word.isalpha() and len(word) > 4
        if whole and tokenizer.encode(word).ids.count(index) == 1:
            return word, index
    raise AssertionError("no unused word in the vocabulary")


@pytest.fixture(scope="module")
def poisoned(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("nan-checkpoint") / "model"
    shutil.copytree(tiny_checkpoint, path)
    word, index = unused_word(Tokenizer.from_file(str(path / "tokenizer.json")))
    weights = load_file(path / "model.safetensors")
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[key][index] = torch.full_like(weights[key][index], float("nan"))
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    manifest.seal(path)  # published broken: the files are what the manifest says
    predictor = start_predictor(tmp_path_factory.mktemp("nan-logs"), path, name="nan-predictor")
    try:
        yield predictor, word
    finally:
        predictor.process.stop()


def test_nan_logits_are_a_counted_5xx_and_the_server_stays_up(poisoned):
    predictor, word = poisoned
    for _ in range(2):
        r = httpx.post(predictor.v1, json={"instances": [f"a {word} film"]}, timeout=30)
        assert r.status_code == 500
        assert r.json()["code"] == "nan_output" and "NaN" in r.json()["error"]
    ok = httpx.post(predictor.v1, json={"instances": ["a fine film"]}, timeout=30)
    assert ok.status_code == 200
    samples = scrape(predictor.url)
    assert value(samples, "modeldeploy_nan_outputs_total") == 2
    assert value(samples, "modeldeploy_requests_total", outcome="error") == 2
    assert value(samples, "modeldeploy_server_errors_total", component="predictor") == 2
    assert value(samples, "modeldeploy_predictions_total") == 1
    assert httpx.get(f"{predictor.url}/v2/health/ready").status_code == 200
