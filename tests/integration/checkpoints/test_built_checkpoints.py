"""Every family's checkpoint loads the way a user loads it, and scores what metrics.json says.

Accuracy is recomputed here through `transformers.pipeline`, a different code path from
the factory's own evaluation, on the fixed held-out test split.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import pipeline

from modeldeploy.tools.checkpoints import build, load_split

pytestmark = pytest.mark.slow

PICKLE_SUFFIXES = (".bin", ".pt", ".pkl", ".pth", ".ckpt")


def _pipeline_accuracy(path: Path) -> float:
    test = load_split("test")
    max_length = json.loads((path / "metrics.json").read_text())["max_length"]
    classify = pipeline("text-classification", model=str(path), tokenizer=str(path), device="cpu")
    outputs = classify(list(test.texts), batch_size=32, truncation=True, max_length=max_length)
    id_of = {"negative": 0, "positive": 1}
    predicted = [id_of[o["label"]] for o in outputs]
    return sum(p == y for p, y in zip(predicted, test.labels, strict=True)) / len(test)


def _metrics(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())


@pytest.mark.long
@pytest.mark.parametrize(
    "recipe", ["tiny", "tiny-distilbert", "tiny-roberta", "good", "good-distilbert", "good-roberta"]
)
def test_family_checkpoint_scores_its_metrics_json_on_the_held_out_split(
    recipe: str, checkpoint: Callable[[str], Path]
) -> None:
    path = checkpoint(recipe)
    metrics = _metrics(path)
    assert metrics["family"] == recipe.split("-")[1] if "-" in recipe else "bert"
    config = json.loads((path / "config.json").read_text())
    expected_arch = {
        "bert": "BertForSequenceClassification",
        "distilbert": "DistilBertForSequenceClassification",
        "roberta": "RobertaForSequenceClassification",
    }[metrics["family"]]
    assert config["architectures"] == [expected_arch]
    measured = _pipeline_accuracy(path)
    assert measured == pytest.approx(metrics["test_accuracy"], abs=0.003)
    assert measured > 0.65  # far above chance (0.5) on a balanced split


def test_checkpoint_directory_has_weights_tokenizer_and_label_map_and_no_pickle(
    tiny_checkpoint: Path,
) -> None:
    names = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "labels.json"} <= names
    assert {"metrics.json", "tokenizer_config.json"} <= names
    assert not [n for n in names if n.endswith(PICKLE_SUFFIXES)]
    assert json.loads((tiny_checkpoint / "labels.json").read_text()) == {
        "0": "negative",
        "1": "positive",
    }
    tokenizer_json = json.loads((tiny_checkpoint / "tokenizer.json").read_text())
    assert tokenizer_json["padding"] is None and tokenizer_json["truncation"] is None


def test_second_build_is_served_from_the_cache(tiny_checkpoint: Path) -> None:
    before = os.stat(tiny_checkpoint / "model.safetensors").st_mtime_ns
    started = time.monotonic()
    again = build("tiny")
    assert again == tiny_checkpoint
    assert os.stat(again / "model.safetensors").st_mtime_ns == before
    assert time.monotonic() - started < 5


def test_bad_is_clearly_worse_and_close_is_close(checkpoint: Callable[[str], Path]) -> None:
    good = _metrics(checkpoint("good"))["test_accuracy"]
    bad = _metrics(checkpoint("bad"))["test_accuracy"]
    close = _metrics(checkpoint("close"))["test_accuracy"]
    assert good - bad >= 0.04
    assert abs(good - close) <= 0.02


def test_slow_has_more_layers_at_equal_accuracy(checkpoint: Callable[[str], Path]) -> None:
    good, slow = checkpoint("good"), checkpoint("slow")
    good_layers = json.loads((good / "config.json").read_text())["num_hidden_layers"]
    slow_layers = json.loads((slow / "config.json").read_text())["num_hidden_layers"]
    assert slow_layers >= 2 * good_layers
    assert abs(_metrics(slow)["test_accuracy"] - _metrics(good)["test_accuracy"]) <= 0.015
