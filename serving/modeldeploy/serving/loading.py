"""Resolve the checkpoint directory a predictor serves, and check it is one we can serve.

Tokenizer and weights always come from that one directory: a registry version is
fetched (and verified file by file against its manifest) by the registry package,
never assembled from parts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.serving.config import ModelSource

FAMILIES = ("bert", "distilbert", "roberta")
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# Set by the operator on every predictor it deploys: the registry's manifest_sha256 tag of
# the version it meant to deploy (operator/platforms/kserve_manifests.py).
EXPECTED_DIGEST_ENV = "MODELDEPLOY_EXPECTED_DIGEST"


class LoadError(RuntimeError):
    """The model cannot be served; the message names what is missing or wrong."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    family: str
    num_labels: int
    max_length: int
    version: str | None  # the registry version, when it came from the registry


def resolve(source: ModelSource) -> tuple[Path, str | None]:
    if source.model_dir is not None:
        return Path(source.model_dir), None
    from modeldeploy.registry.fetch import fetch

    cache = source.fetch_cache or Path.home() / ".cache" / "modeldeploy" / "fetch"
    assert source.registry_uri and source.model and source.version
    path = fetch(source.registry_uri, source.model, source.version, cache)
    version = source.version if source.version.isdigit() else path.parent.name
    return path, version


def inspect(path: Path, version: str | None = None) -> Checkpoint:
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise LoadError(f"{path} is not a servable checkpoint: missing {', '.join(missing)}")
    config = json.loads((path / "config.json").read_text())
    family = config.get("model_type", "")
    if family not in FAMILIES:
        raise LoadError(f"{path}: model_type {family!r} is not one of {', '.join(FAMILIES)}")
    num_labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    max_length = _max_length(path, config)
    return Checkpoint(path, family, num_labels, max_length, version)


def _max_length(path: Path, config: dict) -> int:
    """The checkpoint's own limit: metrics.json, then the tokenizer's, capped by positions."""
    candidates = []
    metrics = path / "metrics.json"
    if metrics.is_file():
        candidates.append(json.loads(metrics.read_text()).get("max_length"))
    tok_config = path / "tokenizer_config.json"
    if tok_config.is_file():
        candidates.append(json.loads(tok_config.read_text()).get("model_max_length"))
    positions = int(config.get("max_position_embeddings", 512))
    if config.get("model_type") == "roberta":
        positions -= 2  # RoBERTa positions start after the padding index
    for value in candidates:
        if isinstance(value, int) and 0 < value <= positions:
            return value
    return min(positions, 512)


def checkpoint_digest(path: Path, from_registry: bool) -> str:
    """The registry's ``manifest_sha256`` of the checkpoint in ``path``.

    A registry fetch has just verified every file of ``path`` against the version's
    manifest and saved that manifest beside the directory, so its hash is the digest
    without reading 90 MB again. A local directory is hashed file by file, exactly as
    ``publish`` builds the manifest.
    """
    from modeldeploy.registry import manifest as manifests

    if from_registry:
        from modeldeploy.registry.fetch import MANIFEST_FILE

        saved = path.parent / MANIFEST_FILE
        if saved.is_file():
            return manifests.manifest_sha256(manifests.from_json(saved.read_text()))
    return manifests.manifest_sha256(manifests.build_manifest(path))


def verify_digest(path: Path, expected: str | None, from_registry: bool) -> str | None:
    """Refuse to serve a checkpoint whose digest is not ``expected`` (no check if unset).

    Returns the digest that was checked (None when nothing was expected).
    """
    expected = (expected or "").strip().lower()
    if not expected:
        return None
    actual = checkpoint_digest(path, from_registry)
    if actual != expected:
        raise LoadError(
            f"wrong checkpoint: {path} has manifest digest {actual}, but "
            f"{EXPECTED_DIGEST_ENV} (the registry manifest_sha256 of the version the operator "
            f"deployed) is {expected}; refusing to start (see 'Wrong checkpoint after a "
            "redeploy' in docs/runbook.md)"
        )
    return actual
