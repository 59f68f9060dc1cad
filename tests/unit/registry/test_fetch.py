"""Fetch rules: only files matching the published manifest are ever returned."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.registry.base import IntegrityError, NotFound, RegistryUnavailable
from modeldeploy.registry.fetch import fetch_version, resolve_version
from modeldeploy.registry.publish import publish_checkpoint
from tests.support.in_memory_registry import InMemoryRegistry


@pytest.fixture
def published(fake_checkpoint: Path, memory_registry: InMemoryRegistry) -> InMemoryRegistry:
    publish_checkpoint(memory_registry, fake_checkpoint, "m", alias="champion")
    return memory_registry


def test_fetch_returns_the_published_files(published, fake_checkpoint, tmp_path) -> None:
    path = fetch_version(published, "m", "1", tmp_path / "cache")
    for f in fake_checkpoint.iterdir():
        assert (path / f.name).read_bytes() == f.read_bytes()


def test_tampered_download_is_refused_naming_the_file(published, tmp_path) -> None:
    weights = published.stored_files("m", "1") / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as err:
        fetch_version(published, "m", "1", tmp_path / "cache")
    assert err.value.path == "model.safetensors"
    assert not any((tmp_path / "cache").rglob("model.safetensors"))  # nothing left to load


def test_incomplete_download_is_refused_naming_the_file(published, tmp_path) -> None:
    (published.stored_files("m", "1") / "tokenizer.json").unlink()
    with pytest.raises(IntegrityError, match=r"tokenizer.json: missing"):
        fetch_version(published, "m", "1", tmp_path / "cache")


def test_second_fetch_reuses_the_verified_cache(published, tmp_path) -> None:
    first = fetch_version(published, "m", "1", tmp_path / "cache")
    published.calls.clear()
    assert fetch_version(published, "m", "1", tmp_path / "cache") == first
    assert "download_version" not in published.calls


def test_damaged_cache_is_replaced_by_a_fresh_verified_download(published, tmp_path) -> None:
    path = fetch_version(published, "m", "1", tmp_path / "cache")
    (path / "labels.json").write_text('{"0": "positive", "1": "negative"}')
    published.calls.clear()
    again = fetch_version(published, "m", "1", tmp_path / "cache")
    assert "download_version" in published.calls
    assert '"negative"' in (again / "labels.json").read_text().split(",")[0]


def test_registry_down_serves_a_verified_cache_but_never_an_unverified_one(
    published, tmp_path
) -> None:
    path = fetch_version(published, "m", "1", tmp_path / "cache")
    published.online = False
    assert fetch_version(published, "m", "1", tmp_path / "cache") == path
    (path / "config.json").write_text("{}")
    with pytest.raises(RegistryUnavailable):
        fetch_version(published, "m", "1", tmp_path / "cache")


def test_refs_resolve_aliases_and_keep_numbers(published) -> None:
    assert resolve_version(published, "m", "champion") == "1"
    assert resolve_version(published, "m", "7") == "7"
    with pytest.raises(NotFound, match="challenger"):
        resolve_version(published, "m", "challenger")
