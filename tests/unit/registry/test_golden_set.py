"""A version's golden set: validated against its classes, uploaded, read back verified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldeploy.registry import golden
from modeldeploy.registry.base import IntegrityError, NotFound
from modeldeploy.registry.publish import publish_checkpoint
from tests.support.in_memory_registry import InMemoryRegistry

CLASSES = {"0": "negative", "1": "positive"}


def jsonl(*rows: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_labels_may_be_indexes_or_names_of_the_models_classes() -> None:
    text = jsonl({"text": "fine", "label": 1}, {"text": "dull", "label": "negative"})
    examples = golden.parse_golden(text, CLASSES)
    assert examples.texts == ("fine", "dull") and examples.labels == (1, "negative")


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ([{"text": "a", "label": 7}], "not one of the model's classes"),
        ([{"text": "a", "label": "neutral"}], "not one of the model's classes"),
        ([{"text": "a", "label": True}], "class index or name"),
        ([{"text": "  ", "label": 1}], "empty text"),
        ([{"text": "a", "label": 1}, {"text": "a", "label": 0}], "same text as line 1"),
        ([], "no examples"),
    ],
)
def test_bad_golden_sets_are_refused_naming_the_line(rows: list[object], words: str) -> None:
    with pytest.raises(golden.GoldenSetRefused, match=words):
        golden.parse_golden(jsonl(*rows), CLASSES)


def test_the_size_limits_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(golden, "MAX_EXAMPLES", 3)
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(4)]
    with pytest.raises(golden.GoldenSetRefused, match="more than 3 examples"):
        golden.parse_golden(jsonl(*rows), CLASSES)
    with pytest.raises(golden.GoldenSetRefused, match="characters"):
        golden.parse_golden(jsonl({"text": "x" * (golden.MAX_TEXT_CHARS + 1), "label": 1}))


def test_publish_with_a_golden_set_tags_the_version_and_reads_back_verified(
    fake_checkpoint: Path, memory_registry: InMemoryRegistry, tmp_path: Path
) -> None:
    file = tmp_path / "golden.jsonl"
    file.write_text(jsonl({"text": "great", "label": 1}, {"text": "awful", "label": 0}))
    info = publish_checkpoint(
        memory_registry, fake_checkpoint, "m", alias="challenger", golden_set=file
    )
    ref = golden.golden_ref(memory_registry.get_version("m", info.version).tags)
    assert ref is not None and ref.size == 2
    # The alias is set after the golden set is in place.
    calls = memory_registry.calls
    assert calls.index("log_version_artifacts") < calls.index("set_alias")
    examples = golden.read_golden(memory_registry, "m", info.version)
    assert examples.texts == ("great", "awful") and examples.labels == (1, 0)


def test_a_refused_golden_set_registers_nothing(
    fake_checkpoint: Path, memory_registry: InMemoryRegistry, tmp_path: Path
) -> None:
    file = tmp_path / "golden.jsonl"
    file.write_text(jsonl({"text": "great", "label": 5}))
    with pytest.raises(golden.GoldenSetRefused):
        publish_checkpoint(memory_registry, fake_checkpoint, "m", golden_set=file)
    assert "create_version" not in memory_registry.calls


def test_a_version_without_a_golden_set_and_a_tampered_one(
    fake_checkpoint: Path, memory_registry: InMemoryRegistry, tmp_path: Path
) -> None:
    info = publish_checkpoint(memory_registry, fake_checkpoint, "m")
    with pytest.raises(NotFound, match="no golden set"):
        golden.read_golden(memory_registry, "m", info.version)
    file = tmp_path / "golden.jsonl"
    file.write_text(jsonl({"text": "great", "label": "positive"}))
    ref = golden.publish_golden(memory_registry, "m", info.version, file)
    stored = Path(ref.uri.removeprefix("file://")) / golden.FILE_NAME
    stored.write_text(jsonl({"text": "great", "label": "negative"}))
    with pytest.raises(IntegrityError, match="digest"):
        golden.read_golden(memory_registry, "m", info.version)
