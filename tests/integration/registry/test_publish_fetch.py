"""Publish and fetch against a real MLflow server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modeldeploy.registry import manifest
from modeldeploy.registry.base import (
    TAG_FAMILY,
    TAG_LABELS,
    TAG_MANIFEST,
    TAG_MAX_LENGTH,
    TAG_TEST_ACCURACY,
    IntegrityError,
    NotFound,
    PickleWeightsRefused,
)
from modeldeploy.registry.fetch import fetch, fetch_version
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint

pytestmark = pytest.mark.slow


def test_publish_records_tags_and_alias(registry: MlflowRegistry, tiny_checkpoint, model_name):
    info = publish_checkpoint(registry, tiny_checkpoint, model_name, alias="challenger")
    stored = registry.get_version(model_name, info.version)
    metrics = json.loads((tiny_checkpoint / "metrics.json").read_text())
    assert stored.tags[TAG_FAMILY] == "bert"
    assert stored.tags[TAG_MAX_LENGTH] == str(metrics["max_length"])
    assert json.loads(stored.tags[TAG_LABELS]) == {"0": "negative", "1": "positive"}
    assert float(stored.tags[TAG_TEST_ACCURACY]) == pytest.approx(metrics["test_accuracy"])
    files = manifest.from_json(stored.tags[TAG_MANIFEST])
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(files)
    assert files["model.safetensors"].sha256 == manifest.sha256_file(
        tiny_checkpoint / "model.safetensors"
    )
    assert registry.get_model(model_name).aliases == {"challenger": info.version}


def test_fetch_verifies_and_reuses_the_cache(registry, tiny_checkpoint, model_name, tmp_path):
    info = publish_checkpoint(registry, tiny_checkpoint, model_name, alias="champion")
    path = fetch(registry.uri, model_name, "champion", tmp_path / "cache")
    assert path == fetch_version(registry, model_name, info.version, tmp_path / "cache")
    for name in manifest.list_files(tiny_checkpoint):
        assert (path / name).read_bytes() == (tiny_checkpoint / name).read_bytes()
    # The checkpoint loads from the fetched directory alone (weights + tokenizer together).
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    AutoTokenizer.from_pretrained(path)
    AutoModelForSequenceClassification.from_pretrained(path)


def test_tampered_artifact_is_refused_naming_the_file(
    registry, checkpoint_copy, model_name, tmp_path
):
    info = publish_checkpoint(registry, checkpoint_copy, model_name)
    # Alter the stored artifact behind MLflow's back (same size, different bytes).
    stored = Path(info.source) / "tokenizer_config.json"
    assert stored.is_file(), "the test server stores artifacts on local disk"
    text = stored.read_text()
    stored.write_text(text.replace("[UNK]", "[UNQ]") if "[UNK]" in text else text[::-1])
    with pytest.raises(IntegrityError) as err:
        fetch_version(registry, model_name, info.version, tmp_path / "cache")
    assert err.value.path == "tokenizer_config.json"
    assert not list((tmp_path / "cache").rglob("tokenizer_config.json"))


def test_pickle_checkpoint_is_refused_and_nothing_is_registered(
    registry, checkpoint_copy, model_name
):
    (checkpoint_copy / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(PickleWeightsRefused, match=r"pytorch_model\.bin"):
        publish_checkpoint(registry, checkpoint_copy, model_name)
    with pytest.raises(NotFound):
        registry.get_model(model_name)
    shutil.rmtree(checkpoint_copy)
