"""Fetch a registered version into a local cache, verified file by file.

This is the only way serving gets a checkpoint: it downloads the version's files,
checks each one against the SHA-256 manifest recorded at publish time, and only then
moves them into ``<cache>/<model>/<version>/``. A cache hit is re-verified before it is
returned, so a file altered on disk is caught too; a damaged cache entry is replaced
by a fresh download, and a download that does not match is refused naming the file.

If the registry is unreachable but the version is cached, the copy of the manifest
saved next to it at fetch time is used, so a restarting server can still load what
it served before.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from modeldeploy.registry import manifest as manifests
from modeldeploy.registry.base import (
    TAG_MANIFEST,
    IntegrityError,
    NotFound,
    RegistryClient,
    RegistryUnavailable,
)

log = logging.getLogger(__name__)

MANIFEST_FILE = ".modeldeploy-manifest.json"  # kept beside (not inside) the checkpoint dir
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cache_path(cache_dir: Path, model: str, version: str) -> Path:
    """Where a version lives in the cache: one folder per model, one per version."""
    return Path(cache_dir) / _SAFE.sub("_", model) / str(version) / "checkpoint"


def resolve_version(client: RegistryClient, model: str, ref: str) -> str:
    """A version number stays as is; anything else is an alias (``champion``)."""
    ref = str(ref)
    if ref.isdigit():
        return ref
    version = client.get_model(model).aliases.get(ref)
    if version is None:
        raise NotFound(f"model {model!r} has no alias {ref!r}")
    return version


def _verified_cache(target: Path, manifest: manifests.Manifest) -> bool:
    if not target.is_dir():
        return False
    try:
        manifests.verify(target, manifest)
        return True
    except IntegrityError as exc:
        log.warning("cached %s failed verification (%s); downloading it again", target, exc)
        return False


def fetch_version(client: RegistryClient, model: str, version: str, cache_dir: Path) -> Path:
    """Return a local directory holding exactly the files published as ``model`` ``version``.

    Raises :class:`IntegrityError` (naming the file) when the download does not match
    the manifest, :class:`NotFound` for an unknown version, and
    :class:`RegistryUnavailable` when MLflow is down and nothing verified is cached.
    """
    version = str(version)
    target = cache_path(cache_dir, model, version)
    saved_manifest = target.parent / MANIFEST_FILE
    try:
        if not client.is_online():  # fail fast: mlflow itself retries for minutes
            raise RegistryUnavailable(f"registry {client!r} is not answering")
        info = client.get_version(model, version)
    except RegistryUnavailable:
        if saved_manifest.is_file():
            manifest = manifests.from_json(saved_manifest.read_text())
            if _verified_cache(target, manifest):
                log.warning("registry unavailable; serving verified cache %s", target)
                return target
        raise
    manifest_text = info.tags.get(TAG_MANIFEST)
    if not manifest_text:
        raise IntegrityError("manifest", f"{model} version {version} has no {TAG_MANIFEST} tag")
    manifest = manifests.from_json(manifest_text)
    if _verified_cache(target, manifest):
        saved_manifest.write_text(manifests.to_json(manifest))
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
    try:
        downloaded = client.download_version(model, version, staging / "download")
        manifests.verify(downloaded, manifest)
        if target.exists():
            shutil.rmtree(target)
        os.replace(downloaded, target)
        saved_manifest.write_text(manifests.to_json(manifest))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch(registry_uri: str, model: str, ref: str, cache_dir: Path) -> Path:
    """Convenience for serving: fetch ``model`` at a version number or alias from a URI."""
    from modeldeploy.registry.mlflow_client import MlflowRegistry

    client = MlflowRegistry(registry_uri)
    return fetch_version(client, model, resolve_version(client, model, ref), cache_dir)
