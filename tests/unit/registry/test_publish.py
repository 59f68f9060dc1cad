"""Publishing rules: safetensors only, tokenizer travels with weights, tags say what it is."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modeldeploy.registry import manifest
from modeldeploy.registry.base import (
    TAG_FAMILY,
    TAG_LABELS,
    TAG_MANIFEST,
    TAG_MAX_LENGTH,
    TAG_TEST_ACCURACY,
    NotFound,
    PickleWeightsRefused,
    PublishRefused,
)
from modeldeploy.registry.publish import inspect_checkpoint, publish_checkpoint, version_tags
from tests.support.in_memory_registry import InMemoryRegistry


@pytest.mark.parametrize(
    "name", ["pytorch_model.bin", "model.pt", "model.pth", "weights.pkl", "last.ckpt"]
)
def test_pickle_weights_are_refused_and_nothing_is_registered(
    fake_checkpoint: Path, memory_registry: InMemoryRegistry, name: str
) -> None:
    (fake_checkpoint / name).write_bytes(b"\x80\x04pickle")
    with pytest.raises(PickleWeightsRefused) as err:
        publish_checkpoint(memory_registry, fake_checkpoint, "m")
    assert name in str(err.value) and "safetensors" in str(err.value)
    assert "create_version" not in memory_registry.calls
    with pytest.raises(NotFound):
        memory_registry.get_model("m")


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (["tokenizer.json"], "no tokenizer"),
        (["model.safetensors"], "no *.safetensors"),
        (["config.json"], "config.json"),
        (["labels.json"], "no label map"),
    ],
)
def test_incomplete_checkpoint_is_refused(fake_checkpoint: Path, remove, message) -> None:
    for name in remove:
        (fake_checkpoint / name).unlink()
    with pytest.raises(PublishRefused, match=message.replace("*", r"\*")):
        inspect_checkpoint(fake_checkpoint)


def test_label_map_falls_back_to_config_id2label(fake_checkpoint: Path) -> None:
    (fake_checkpoint / "labels.json").unlink()
    (fake_checkpoint / "config.json").write_text(
        json.dumps({"model_type": "roberta", "id2label": {"0": "neg", "1": "pos"}})
    )
    (fake_checkpoint / "metrics.json").unlink()
    info = inspect_checkpoint(fake_checkpoint)
    assert info.labels == {"0": "neg", "1": "pos"}
    assert info.family == "roberta"
    assert info.max_length == 128  # from tokenizer_config.json when metrics.json is absent


def test_tags_record_family_length_labels_accuracy_and_manifest(fake_checkpoint: Path) -> None:
    info = inspect_checkpoint(fake_checkpoint)
    built = manifest.build_manifest(fake_checkpoint)
    tags = version_tags(info, built, datetime(2026, 1, 2, tzinfo=UTC))
    assert tags[TAG_FAMILY] == "bert"
    assert tags[TAG_MAX_LENGTH] == "64"
    assert json.loads(tags[TAG_LABELS]) == {"0": "negative", "1": "positive"}
    assert tags[TAG_TEST_ACCURACY] == "0.75"
    assert manifest.from_json(tags[TAG_MANIFEST]) == built


def test_publish_with_alias_sets_it_on_the_new_version(
    fake_checkpoint: Path, memory_registry: InMemoryRegistry
) -> None:
    first = publish_checkpoint(memory_registry, fake_checkpoint, "m")
    second = publish_checkpoint(memory_registry, fake_checkpoint, "m", alias="challenger")
    assert (first.version, second.version) == ("1", "2")
    assert memory_registry.get_model("m").aliases == {"challenger": "2"}
    assert "challenger" in second.aliases
