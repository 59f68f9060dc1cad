"""Publishing a version's Triton repository, and the storageUri KServe loads it from."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.registry import manifest as manifests
from modeldeploy.registry.base import IntegrityError, NotFound
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.registry.storage import FilesystemStore
from modeldeploy.registry.triton import (
    TAG_TRITON_MANIFEST,
    TAG_TRITON_MANIFEST_SHA256,
    TAG_TRITON_URI,
    TritonUriError,
    fetch_triton,
    manifest_rel,
    triton_uri,
)
from modeldeploy.serving.triton.backend_model import VERSION_FILE, registry_version, verify_unit
from tests.support.in_memory_registry import InMemoryRegistry


def claim(mount: Path):
    """A store factory for ``pvc://models/...`` with the claim mounted at ``mount``."""
    mount.mkdir(parents=True, exist_ok=True)
    return lambda uri: FilesystemStore(uri, mount)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("s3://bucket/triton", "s3://bucket/triton/reviews/3/triton"),
        ("gs://bucket/a/b/", "gs://bucket/a/b/reviews/3/triton"),
        ("https://models.example/repo", "https://models.example/repo/reviews/3/triton.tar.gz"),
        ("pvc://models-claim/triton", "pvc://models-claim/triton/reviews/3/triton"),
    ],
)
def test_triton_uri_maps_version_under_the_base(base: str, expected: str) -> None:
    assert triton_uri(base, "reviews", "3") == expected


@pytest.mark.parametrize(
    ("base", "model", "version", "message"),
    [
        ("mlflow-artifacts:/1/abc/artifacts", "reviews", "3", "storage initializer"),
        ("models:/m-123", "reviews", "3", "storage initializer"),
        ("file:///tmp/x", "reviews", "3", "storage initializer"),
        ("s3://", "reviews", "3", "storage initializer"),
        ("s3://bucket", "my model", "3", "model name"),
        ("s3://bucket", "../up", "3", "model name"),
        ("s3://bucket", "reviews", "latest", "positive integers"),
    ],
)
def test_triton_uri_refuses_what_kserve_cannot_fetch(
    base: str, model: str, version: str, message: str
) -> None:
    with pytest.raises(TritonUriError, match=message):
        triton_uri(base, model, version)


def test_a_bad_base_uri_registers_nothing(tmp_path: Path, tiny_checkpoint: Path) -> None:
    registry = InMemoryRegistry(store_dir=tmp_path / "store")
    with pytest.raises(TritonUriError):
        publish_checkpoint(registry, tiny_checkpoint, "reviews", triton_base_uri="models:/x")
    assert "create_version" not in registry.calls


@pytest.mark.slow
def test_publish_attaches_a_verified_repository_and_records_its_uri(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    registry = InMemoryRegistry(store_dir=tmp_path / "store")
    publish_checkpoint(registry, tiny_checkpoint, "reviews")  # version 1: no Triton
    created = publish_checkpoint(
        registry,
        tiny_checkpoint,
        "reviews",
        alias="challenger",
        triton_base_uri="pvc://models/triton",
        triton_store=claim(tmp_path / "claim"),
    )
    assert created.version == "2" and created.aliases == ("challenger",)
    tags = registry.get_version("reviews", "2").tags
    assert tags[TAG_TRITON_URI] == "pvc://models/triton/reviews/2/triton"
    manifest = manifests.from_json(tags[TAG_TRITON_MANIFEST])
    assert tags[TAG_TRITON_MANIFEST_SHA256] == manifests.manifest_sha256(manifest)
    # Tokenizer and weights as one unit, Triton version 1 for every registry version (an
    # answer's model_version names no arm); the registry version is in the unit, hashed.
    unit = {"reviews/1/model.onnx", "reviews/1/tokenizer.json", "reviews/config.pbtxt"}
    assert unit | {f"reviews/1/{VERSION_FILE}"} <= set(manifest)
    assert not any(rel.startswith("reviews/2/") for rel in manifest)

    repository = fetch_triton(registry, "reviews", "2", tmp_path / "synced")
    verify_unit(repository, "reviews", "reviews", "1")  # what model.py checks at load
    assert registry_version(repository / "reviews" / "1", "1") == "2"  # its metrics' version
    # ... and the same repository sits where the storageUri points (pvc://models/<path>).
    uploaded = tmp_path / "claim" / "triton" / "reviews" / "2" / "triton"
    manifests.verify(uploaded, manifest)
    verify_unit(uploaded, "reviews", "reviews", "1")

    with pytest.raises(NotFound, match="without a Triton repository"):
        fetch_triton(registry, "reviews", "1", tmp_path / "none")


@pytest.mark.slow
def test_a_tampered_artifact_is_refused_on_fetch(tmp_path: Path, tiny_checkpoint: Path) -> None:
    registry = InMemoryRegistry(store_dir=tmp_path / "store")
    publish_checkpoint(
        registry, tiny_checkpoint, "reviews", triton_base_uri="gs://b", triton_store=None
    )
    stored = tmp_path / "store" / "artifacts" / "reviews" / "1" / "triton"
    (stored / "reviews" / "1" / "labels.json").write_text('{"0": "positive", "1": "negative"}')
    with pytest.raises(IntegrityError, match=r"reviews/1/labels\.json"):
        fetch_triton(registry, "reviews", "1", tmp_path / "synced")
    assert not (tmp_path / "synced").exists()


def test_the_manifest_uploaded_last_is_the_current_one_or_a_legacy_repositorys(
    tmp_path: Path,
) -> None:
    assert manifest_rel("reviews", "7") == "reviews/modeldeploy-manifest-1.json"
    legacy = tmp_path / "legacy"
    (legacy / "reviews").mkdir(parents=True)
    (legacy / "reviews" / "modeldeploy-manifest-7.json").write_text("{}")
    assert manifest_rel("reviews", "7", legacy) == "reviews/modeldeploy-manifest-7.json"
    current = tmp_path / "current"
    (current / "reviews").mkdir(parents=True)
    (current / "reviews" / "modeldeploy-manifest-1.json").write_text("{}")
    assert manifest_rel("reviews", "7", current) == "reviews/modeldeploy-manifest-1.json"


@pytest.mark.parametrize("bad", ["0", "x", "-3"])
def test_a_registry_version_that_is_not_one_is_refused_before_exporting(
    tmp_path: Path, bad: str
) -> None:
    from modeldeploy.serving.triton.export import ExportError, export_repository

    with pytest.raises(ExportError, match="registry version"):
        export_repository(tmp_path / "none", tmp_path / "repo", "reviews", 1, registry_version=bad)
    assert not (tmp_path / "repo").exists()
