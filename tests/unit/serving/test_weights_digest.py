"""The ONNX cache key (weights digest) is memoised by file identity, never trusted blindly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modeldeploy.serving.backends import onnx_backend


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "model"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (root / "model.safetensors").write_bytes(b"weights" * 100)
    return root


def test_memoised_digest_equals_the_full_hash(model_dir: Path) -> None:
    first = onnx_backend.weights_digest(model_dir)
    assert (onnx_backend.cache_root() / "onnx" / onnx_backend.DIGESTS_FILE).is_file()
    assert onnx_backend.weights_digest(model_dir) == first == onnx_backend._hash_weights(model_dir)


def test_rewritten_weights_get_a_new_digest_even_with_size_and_mtime_kept(model_dir: Path):
    before = onnx_backend.weights_digest(model_dir)
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    weights.write_bytes(b"WEIGHTS" * 100)  # same size
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime; ctime moves
    assert onnx_backend.weights_digest(model_dir) != before


def test_an_unwritable_memo_only_costs_the_hash(model_dir: Path, tmp_path: Path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("MODELDEPLOY_CACHE", str(blocker))
    assert onnx_backend.weights_digest(model_dir) == onnx_backend._hash_weights(model_dir)
