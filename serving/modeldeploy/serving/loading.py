"""Resolve the checkpoint directory a predictor serves, and check it is one we can serve.

Tokenizer and weights always come from that one directory: a registry version is
fetched (and verified file by file against its manifest) by the registry package,
never assembled from parts.

Every predictor verifies its files against a SHA-256 manifest before it loads anything
(:func:`verify_checkpoint`):

* a registry version: fetch has just verified every file against the version's
  manifest tag;
* ``--model-dir``: the directory must carry its own manifest, ``.modeldeploy-seal.json``
  (written by ``modeldeploy registry seal DIR``, and by the checkpoint factory), and every
  file is checked against it; a directory without one is served only when
  ``MODELDEPLOY_EXPECTED_DIGEST`` names its digest (then the files are hashed and compared);
* in both, when ``MODELDEPLOY_EXPECTED_DIGEST`` is set (the operator sets it, in KServe
  and in local mode), the manifest's digest must equal it.
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


class IntegrityFailed(LoadError):
    """The files are not the ones the manifest (or the expected digest) describes."""


class RegistryFailed(LoadError):
    """The registry version could not be fetched (unreachable, unknown, no manifest tag)."""


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
    from modeldeploy.registry.base import IntegrityError, RegistryError
    from modeldeploy.registry.fetch import fetch
    from modeldeploy.registry.uris import redact_text

    cache = source.fetch_cache or Path.home() / ".cache" / "modeldeploy" / "fetch"
    assert source.registry_uri and source.model and source.version
    try:
        path = fetch(source.registry_uri, source.model, source.version, cache)
    except IntegrityError as exc:
        raise IntegrityFailed(
            f"{source.model} version {source.version} does not match its manifest: {exc}"
        ) from None
    except RegistryError as exc:
        raise RegistryFailed(
            redact_text(f"cannot fetch {source.model} version {source.version}: {exc}")
        ) from None
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


def _sealed_digest(path: Path) -> str | None:
    """Verify ``path`` against the manifest sealed into it; its digest, or None if unsealed."""
    from modeldeploy.registry import manifest as manifests
    from modeldeploy.registry.base import IntegrityError

    try:
        sealed = manifests.read_seal(path)
        if sealed is None:
            return None
        manifests.verify(path, sealed)
    except IntegrityError as exc:
        raise IntegrityFailed(
            f"{path} does not match its manifest {manifests.SEAL_FILE}: {exc}; refusing to start"
        ) from None
    return manifests.manifest_sha256(sealed)


def verify_checkpoint(path: Path, expected: str | None, from_registry: bool) -> str:
    """Refuse to serve files that no manifest vouches for; return the manifest digest.

    See the module docstring for the rules. Raises :class:`IntegrityFailed`.
    """
    expected = (expected or "").strip().lower()
    if from_registry:
        actual = checkpoint_digest(path, from_registry=True)
    else:
        sealed = _sealed_digest(path)
        if sealed is None and not expected:
            from modeldeploy.registry.manifest import SEAL_FILE

            raise IntegrityFailed(
                f"{path} carries no manifest ({SEAL_FILE}) and {EXPECTED_DIGEST_ENV} is not "
                f"set, so nothing vouches for its files; run 'modeldeploy registry seal "
                f"{path}' on a trusted copy, or set {EXPECTED_DIGEST_ENV}"
            )
        actual = sealed or checkpoint_digest(path, from_registry=False)
    if expected and actual != expected:
        raise IntegrityFailed(_mismatch(path, actual, expected))
    return actual


def verify_digest(path: Path, expected: str | None, from_registry: bool) -> str | None:
    """Refuse to serve a checkpoint whose digest is not ``expected`` (no check if unset).

    Returns the digest that was checked (None when nothing was expected).
    """
    expected = (expected or "").strip().lower()
    if not expected:
        return None
    actual = checkpoint_digest(path, from_registry)
    if actual != expected:
        raise IntegrityFailed(_mismatch(path, actual, expected))
    return actual


def _mismatch(path: Path, actual: str, expected: str) -> str:
    return (
        f"wrong checkpoint: {path} has manifest digest {actual}, but "
        f"{EXPECTED_DIGEST_ENV} (the registry manifest_sha256 of the version the operator "
        f"deployed) is {expected}; refusing to start (see 'Wrong checkpoint after a "
        "redeploy' in docs/runbook.md)"
    )
