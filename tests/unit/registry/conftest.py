"""A small fake checkpoint for unit tests: real files, no model (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.in_memory_registry import InMemoryRegistry


def make_checkpoint(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (root / "model.safetensors").write_bytes(b"\x00" * 64 + b"weights")
    (root / "tokenizer.json").write_text('{"model": {"type": "WordPiece"}}')
    (root / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128}))
    (root / "labels.json").write_text(json.dumps({"0": "negative", "1": "positive"}))
    (root / "metrics.json").write_text(
        json.dumps({"family": "bert", "max_length": 64, "test_accuracy": 0.75, "recipe": "x"})
    )
    return root


@pytest.fixture
def fake_checkpoint(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "ckpt")


@pytest.fixture
def memory_registry(tmp_path: Path) -> InMemoryRegistry:
    return InMemoryRegistry(store_dir=tmp_path / "store")
