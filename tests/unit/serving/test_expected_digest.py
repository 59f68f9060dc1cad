"""MODELDEPLOY_EXPECTED_DIGEST: the predictor serves only the checkpoint the operator meant.

The operator sets the variable to the registry's ``manifest_sha256`` tag of the version it
deploys (``registry_port._ref`` -> ``kserve_manifests``); the predictor recomputes that
digest from what it loaded and refuses to start on a mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldeploy.registry.base import TAG_MANIFEST_SHA256
from modeldeploy.registry.fetch import fetch_version
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.serving.loading import (
    EXPECTED_DIGEST_ENV,
    LoadError,
    checkpoint_digest,
    verify_digest,
)
from tests.support.in_memory_registry import InMemoryRegistry


def _checkpoint(root: Path, weights: bytes = b"weights") -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (root / "model.safetensors").write_bytes(b"\x00" * 64 + weights)
    (root / "tokenizer.json").write_text('{"model": {"type": "WordPiece"}}')
    (root / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128}))
    (root / "labels.json").write_text(json.dumps({"0": "negative", "1": "positive"}))
    (root / "metrics.json").write_text(json.dumps({"family": "bert", "max_length": 64}))
    return root


@pytest.fixture
def registry(tmp_path: Path) -> InMemoryRegistry:
    client = InMemoryRegistry(store_dir=tmp_path / "store")
    publish_checkpoint(client, _checkpoint(tmp_path / "v1"), "m")
    publish_checkpoint(client, _checkpoint(tmp_path / "v2", weights=b"other"), "m")
    return client


def _operator_digest(client: InMemoryRegistry, version: str) -> str:
    """What the operator puts in the variable (operator/registry_port.py)."""
    return client.get_version("m", version).tags[TAG_MANIFEST_SHA256]


@pytest.mark.parametrize("from_registry", [True, False])
def test_digest_of_a_fetched_version_is_the_operator_tag(registry, tmp_path, from_registry):
    path = fetch_version(registry, "m", "1", tmp_path / "cache")
    assert checkpoint_digest(path, from_registry) == _operator_digest(registry, "1")
    assert verify_digest(path, _operator_digest(registry, "1"), from_registry) is not None


def test_the_other_versions_digest_is_refused_with_a_clear_message(registry, tmp_path):
    path = fetch_version(registry, "m", "1", tmp_path / "cache")
    expected = _operator_digest(registry, "2")
    with pytest.raises(LoadError) as err:
        verify_digest(path, expected, from_registry=True)
    message = str(err.value)
    assert message.startswith("wrong checkpoint")
    assert expected in message and _operator_digest(registry, "1") in message
    assert EXPECTED_DIGEST_ENV in message and "refusing to start" in message


def test_a_local_directory_that_differs_by_one_byte_is_refused(registry, tmp_path):
    local = _checkpoint(tmp_path / "local", weights=b"weightz")
    with pytest.raises(LoadError, match="wrong checkpoint"):
        verify_digest(local, _operator_digest(registry, "1"), from_registry=False)


def test_an_extra_file_in_a_local_directory_changes_the_digest(registry, tmp_path):
    local = _checkpoint(tmp_path / "local")
    assert verify_digest(local, _operator_digest(registry, "1"), from_registry=False)
    (local / "pytorch_model.bin").write_bytes(b"smuggled")
    with pytest.raises(LoadError, match="wrong checkpoint"):
        verify_digest(local, _operator_digest(registry, "1"), from_registry=False)


@pytest.mark.parametrize("unset", [None, "", "  "])
def test_no_expected_digest_means_no_check(tmp_path, unset):
    assert verify_digest(_checkpoint(tmp_path / "any"), unset, from_registry=False) is None


def test_digest_comparison_ignores_case_and_surrounding_space(registry, tmp_path):
    path = fetch_version(registry, "m", "1", tmp_path / "cache")
    shouted = f"  {_operator_digest(registry, '1').upper()}\n"
    assert verify_digest(path, shouted, from_registry=True) == _operator_digest(registry, "1")
