"""A version's Triton model repository: published beside its checkpoint, loaded by KServe.

KServe's storage initializer fetches ``s3://``, ``gs://``, ``https://`` and ``pvc://`` URIs,
not MLflow's ``mlflow-artifacts:/`` or ``models:/``, and Triton needs a model repository,
not a Hugging Face checkpoint (pointed at one it reports ready with no models). So
publishing with a Triton base URI also:

1. exports the checkpoint with ``modeldeploy.serving.triton.export_repository`` (tokenizer
   and weights in one version directory, its own SHA-256 manifest inside, which ``model.py``
   checks before loading). Every registry version is Triton version :data:`TRITON_VERSION`,
   so a Triton answer's ``model_version`` is the same for both arms (the label view hides
   the arm); the registry version sits in the unit's ``modeldeploy-version.json``, listed in
   the manifest, and labels the arm's metrics;
2. logs that repository as the ``triton/`` artifact of the version's publish run;
3. tags the version with the artifact's location and the repository's manifest (the
   registry format, every file);
4. uploads the repository to :func:`triton_uri` (``<base>/<model>/<version>/triton``), the
   URI the operator writes as the InferenceService's ``storageUri`` and KServe's storage
   initializer fetches (``registry/storage.py``: s3://, pvc:// and https:// as one
   ``.tar.gz``; manifest last, idempotent);
5. tags the version with that URI, last: a version with ``modeldeploy.triton_uri`` has its
   repository in place.

``gs://`` bases are not uploaded by publishing (pass ``store=None``): copy the repository
there yourself (``fetch_triton`` downloads and verifies it). If an upload fails,
:func:`upload_triton` completes it later from the version's artifact.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from modeldeploy.registry import manifest as manifests
from modeldeploy.registry.base import TAG_PREFIX, IntegrityError, NotFound, RegistryClient
from modeldeploy.registry.storage import StorageError, StoreFactory, UploadResult, open_store

TAG_TRITON_URI = TAG_PREFIX + "triton_uri"
TAG_TRITON_ARTIFACT = TAG_PREFIX + "triton_artifact"
TAG_TRITON_MANIFEST = TAG_PREFIX + "triton_manifest"
TAG_TRITON_MANIFEST_SHA256 = TAG_PREFIX + "triton_manifest_sha256"
ARTIFACT_PATH = "triton"
URI_SCHEMES = ("s3", "gs", "https", "pvc")  # what KServe's storage initializer fetches
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TRITON_VERSION = 1
"""The Triton version directory of every published repository (one repository per URI)."""


class TritonUriError(ValueError):
    """The base URI or the model name cannot make a storageUri KServe would fetch."""


class ArtifactStore(Protocol):
    """The two calls beyond :class:`RegistryClient` that extra version artifacts need."""

    def log_version_artifacts(
        self, name: str, version: str, local_dir: Path, artifact_path: str
    ) -> str: ...

    def download_artifacts(self, uri: str, dst_dir: Path) -> Path: ...


class TritonRegistry(RegistryClient, ArtifactStore, Protocol):
    """A registry client that can also attach and fetch extra artifacts (MlflowRegistry)."""


def triton_uri(base_uri: str, model: str, version: str | int) -> str:
    """``<base>/<model>/<version>/triton``: where KServe loads this version's repository.

    Pure. ``base_uri`` is the operator's setting, under one of :data:`URI_SCHEMES`;
    ``model`` must be usable as a path segment and a Triton model name. Under ``https://``
    it is ``.../triton.tar.gz``: KServe's https download fetches one file and unpacks it only
    when the path names an archive (``kserve_storage._download_from_uri``), so the repository
    is published there as one archive (``registry/storage.py``).
    """
    scheme, sep, rest = base_uri.partition("://")
    if not sep or scheme not in URI_SCHEMES or not rest.strip("/"):
        raise TritonUriError(
            f"Triton base URI {base_uri!r}: use {', '.join(s + '://…' for s in URI_SCHEMES)} "
            "(what KServe's storage initializer can fetch)"
        )
    if not _NAME.match(model):
        raise TritonUriError(
            f"model name {model!r}: a Triton repository needs letters, digits, '.', '_' or "
            "'-' (it is both a path segment and the Triton model name)"
        )
    version = str(version)
    if not version.isdigit() or int(version) < 1:
        raise TritonUriError(f"version {version!r}: registry versions are positive integers")
    suffix = ".tar.gz" if scheme == "https" else ""
    return f"{base_uri.rstrip('/')}/{model}/{int(version)}/triton{suffix}"


def build_repository(checkpoint: Path, target: Path, model: str, version: str) -> Path:
    """Export ``checkpoint`` as version ``version`` of Triton model ``model`` under ``target``."""
    from modeldeploy.serving.triton.export import export_repository

    export_repository(checkpoint, target, model, TRITON_VERSION, registry_version=str(int(version)))
    return target


def manifest_rel(model: str, version: str | int, repository: Path | None = None) -> str:
    """The export's own manifest inside the repository: the file uploaded last.

    Published repositories are Triton version :data:`TRITON_VERSION`; one published before
    that (version directory = registry version) is recognised in ``repository`` by its
    manifest's name.
    """
    from modeldeploy.serving.triton.backend_model import manifest_name

    current = f"{model}/{manifest_name(TRITON_VERSION)}"
    legacy = f"{model}/{manifest_name(int(version))}"
    old = repository is not None and not (repository / current).is_file()
    return legacy if old and (repository / legacy).is_file() else current  # type: ignore[operator]


def check_publishable(
    checkpoint: Path, base_uri: str, model: str, store: StoreFactory | None = None
) -> None:
    """Everything that can be refused before a version is registered (raises).

    With ``store`` the storage behind ``base_uri`` must answer too (an unreachable bucket
    or an unmounted claim registers nothing).
    """
    from modeldeploy.serving.triton.export import check_checkpoint

    triton_uri(base_uri, model, 1)
    check_checkpoint(checkpoint)
    if store is not None:
        store(base_uri).check()


def publish_triton(
    client: TritonRegistry,
    model: str,
    version: str,
    checkpoint: Path,
    base_uri: str,
    store: StoreFactory | None = open_store,
) -> dict[str, str]:
    """Export, attach, upload and tag the Triton repository of a registered version.

    Returns the tags set. ``store=None`` skips the upload (and the URI tag stays unset
    until :func:`upload_triton` ran); an upload failure raises
    :class:`~modeldeploy.registry.storage.StorageError` after the artifact tags are set.
    """
    uri = triton_uri(base_uri, model, version)
    with tempfile.TemporaryDirectory(prefix="modeldeploy-triton-") as tmp:
        repository = build_repository(Path(checkpoint), Path(tmp) / "repository", model, version)
        manifest = manifests.build_manifest(repository)
        artifact = client.log_version_artifacts(model, str(version), repository, ARTIFACT_PATH)
        tags = {
            TAG_TRITON_ARTIFACT: artifact,
            TAG_TRITON_MANIFEST: manifests.to_json(manifest),
            TAG_TRITON_MANIFEST_SHA256: manifests.manifest_sha256(manifest),
        }
        for key, value in tags.items():
            client.set_version_tag(model, str(version), key, value)
        if store is None:
            return tags
        try:
            store(uri).upload(repository, manifest_rel(model, version))
        except StorageError as exc:
            hint = (
                f"; version {version} is registered without it (no alias set): complete it with "
                f"`modeldeploy registry upload-triton {model} {version} --triton-base-uri "
                f"{base_uri}`"
            )
            raise type(exc)(exc.uri, exc.reason + hint) from None
    client.set_version_tag(model, str(version), TAG_TRITON_URI, uri)  # last: it is in place
    return {**tags, TAG_TRITON_URI: uri}


def upload_triton(
    client: TritonRegistry,
    model: str,
    version: str,
    base_uri: str,
    store: StoreFactory = open_store,
) -> UploadResult:
    """Upload an already published version's repository (verified) to its URI.

    Completes a publish whose upload failed, or copies a version to a new base. Idempotent:
    a repository already in place gives a result with nothing written.
    """
    uri = triton_uri(base_uri, model, version)
    with tempfile.TemporaryDirectory(prefix="modeldeploy-triton-") as tmp:
        repository = fetch_triton(client, model, str(version), Path(tmp) / "repository")
        result = store(uri).upload(repository, manifest_rel(model, version, repository))
    client.set_version_tag(model, str(version), TAG_TRITON_URI, uri)
    return result


def triton_tags(tags: Mapping[str, str]) -> tuple[str, manifests.Manifest]:
    """(artifact URI, manifest) from a version's tags; NotFound when it has no repository."""
    artifact, text = tags.get(TAG_TRITON_ARTIFACT), tags.get(TAG_TRITON_MANIFEST)
    if not artifact or not text:
        raise NotFound("this version was published without a Triton repository")
    return artifact, manifests.from_json(text)


def fetch_triton(client: TritonRegistry, model: str, version: str, target: Path) -> Path:
    """Download a version's Triton repository to ``target``, verified file by file.

    ``target`` then holds exactly what belongs at :func:`triton_uri` (sync it there);
    a file that differs from the tagged manifest raises :class:`IntegrityError`.
    """
    artifact, manifest = triton_tags(client.get_version(model, str(version)).tags)
    with tempfile.TemporaryDirectory(prefix="modeldeploy-triton-") as tmp:
        downloaded = client.download_artifacts(artifact, Path(tmp))
        manifests.verify(downloaded, manifest)
        if target.exists():
            raise IntegrityError(str(target), "exists already; fetch into a new directory")
        shutil.copytree(downloaded, target)
    return target


def label_view_ready(tags: Mapping[str, str]) -> bool | None:
    """Whether a version's published Triton repository can answer in the label view.

    Pure. ``None``: the version has no Triton repository tag. ``False``: its repository was
    exported before publishing used one Triton version for every arm (its answers would
    name the registry version; its ``model.py`` always returns PROBABILITIES), or the tag
    cannot be read. ``True``: its manifest lists the unit's registry-version file under
    Triton version :data:`TRITON_VERSION`.
    """
    from modeldeploy.serving.triton.backend_model import VERSION_FILE

    text = tags.get(TAG_TRITON_MANIFEST)
    if not text:
        return None
    try:
        files = manifests.from_json(text)
    except IntegrityError:
        return False
    return any(rel.endswith(f"/{TRITON_VERSION}/{VERSION_FILE}") for rel in files)
