"""Put a version's Triton repository where KServe's storage initializer fetches it.

The operator writes ``triton_uri(base, model, version)`` as the InferenceService's
``storageUri``; publishing copies the repository to exactly that URI (one function composes
both, ``registry/triton.py``). What KServe's storage initializer does with the URI decides
the layout (kserve/kserve ``python/storage/kserve_storage/kserve_storage.py`` at aaac4e2,
``Storage.download``):

- ``s3://bucket/key`` (``_download_s3``): lists ``bucket.objects.filter(Prefix=key)`` (a
  string prefix, no trailing slash), skips keys ending in ``/`` **and objects of size 0**,
  and writes each object to ``out_dir/<key minus the prefix>``. So every file of the
  repository is an object under ``key/``, and a repository with an empty file is refused
  here (KServe would drop it and the manifest check would then refuse the load). Client
  settings come from ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
  ``AWS_DEFAULT_REGION``, ``AWS_CA_BUNDLE``, ``S3_VERIFY_SSL``, ``S3_USER_VIRTUAL_BUCKET``
  (``_get_s3_client_kwargs``/``get_S3_config``); :class:`S3Store` reads the same variables.
- ``https://host/.../triton.tar.gz`` (``_download_from_uri``): one file; a ``.tar.gz`` path
  with a tar ``Content-Type`` is gunzipped and unpacked into the model directory. So the
  repository is published as one archive (:class:`HttpArchiveStore`, e.g. through MLflow's
  artifact proxy), and :func:`~modeldeploy.registry.triton.triton_uri` ends in ``.tar.gz``.
- ``pvc://claim/path`` (Go webhook, ``pkg/utils/storage.go`` ``ParsePvcURI`` and
  ``storage_initializer_injector.go``): the claim is mounted and ``path`` inside it is the
  model directory. :class:`FilesystemStore` writes into the claim mounted here.

Upload rules, the same for every store:

- **Manifest last.** The export's own manifest (``<model>/modeldeploy-manifest-<v>.json``,
  which the Triton ``model.py`` verifies before loading) is written after every other file,
  so a reader never finds a complete-looking but partial repository: until the manifest is
  there, the load is refused. A filesystem store goes further and renames a finished
  staging directory into place (atomic); an https archive is one ``PUT``.
- **Idempotent.** The destination's manifest is read first: the same bytes mean the same
  repository, and only missing or wrong-sized files are (re)written (normally none: a no-op);
  a different manifest is refused (:class:`StorageConflict`), nothing is written.
- **Failures are named.** Any error is a :class:`StorageError` naming the URI; what this
  attempt wrote is removed again when the destination had no manifest before.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from modeldeploy.registry.base import RegistryError

PVC_MOUNTS_ENV = "MODELDEPLOY_PVC_MOUNTS"  # "claim=/mount/dir,other=/dir"
UPLOAD_SCHEMES = ("s3", "pvc", "https")


class StorageError(RegistryError):
    """The repository could not be written to (or read from) its storage URI."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"Triton repository at {uri}: {reason}")
        self.uri = uri
        self.reason = reason


class StorageConflict(StorageError):
    """The URI already holds a different repository for this version: never overwritten."""


@dataclass(frozen=True)
class UploadResult:
    """What an upload did: ``written`` lists files written (empty: it was there already)."""

    uri: str
    written: tuple[str, ...]

    @property
    def unchanged(self) -> bool:
        return not self.written


class RepositoryStore(Protocol):
    """One storage URI that can hold one Triton repository."""

    uri: str

    def check(self) -> None:
        """Raise :class:`StorageError` if the storage cannot be reached (before publishing)."""

    def upload(self, repository: Path, manifest_rel: str) -> UploadResult:
        """Copy ``repository`` here, ``manifest_rel`` (relative path) last; see module doc."""


StoreFactory = Callable[[str], RepositoryStore]  # storage URI -> its store (open_store)


def local_files(repository: Path) -> dict[str, int]:
    """Every file under ``repository`` as relative POSIX path -> size."""
    return {
        p.relative_to(repository).as_posix(): p.stat().st_size
        for p in sorted(repository.rglob("*"))
        if p.is_file()
    }


def _check_manifest_rel(repository: Path, manifest_rel: str, uri: str) -> bytes:
    path = repository / manifest_rel
    if not path.is_file():
        raise StorageError(uri, f"the repository has no manifest {manifest_rel}; nothing uploaded")
    return path.read_bytes()


def plan_upload(
    local: Mapping[str, int],
    remote: Mapping[str, int],
    manifest_rel: str,
    remote_manifest: bytes | None,
    local_manifest: bytes,
    uri: str,
) -> tuple[list[str], list[str]]:
    """(files to write, manifest last if needed; stale files to delete). Pure.

    Raises :class:`StorageConflict` when the destination's manifest differs from ours.
    Without a manifest there nothing found is trusted: every file is written. Under the same
    manifest only missing or wrong-sized files are rewritten (a same-sized altered file is
    left for the load-time manifest check to refuse).
    """
    if remote_manifest is not None and remote_manifest != local_manifest:
        raise StorageConflict(
            uri,
            "holds a different repository for this version (its manifest differs); refusing "
            "to overwrite what may be serving. Publish a new version instead.",
        )
    writes = sorted(
        rel
        for rel, size in local.items()
        if rel != manifest_rel and (remote_manifest is None or remote.get(rel) != size)
    )
    stale = sorted(set(remote) - set(local))
    if remote_manifest is None:
        writes.append(manifest_rel)
    return writes, stale


# --------------------------------------------------------------------------- s3


def _s3_client(env: Mapping[str, str]) -> Any:
    """A boto3 S3 client configured from the variables KServe's storage initializer reads."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise StorageError("s3://", "publishing to s3:// needs boto3 (pip install boto3)") from None
    virtual = env.get("S3_USER_VIRTUAL_BUCKET", "false").lower() == "true"
    config = Config(
        connect_timeout=int(env.get("S3_CONNECT_TIMEOUT", "15")),
        read_timeout=int(env.get("S3_READ_TIMEOUT", "30")),
        retries={"max_attempts": int(env.get("S3_MAX_ATTEMPTS", "3"))},
        s3={"addressing_style": "virtual" if virtual else "path"},
    )
    kwargs: dict[str, Any] = {"config": config}
    if endpoint := env.get("AWS_ENDPOINT_URL"):
        kwargs["endpoint_url"] = endpoint
    if region := env.get("AWS_DEFAULT_REGION"):
        kwargs["region_name"] = region
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        kwargs["aws_access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        kwargs["aws_secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
    verify = env.get("S3_VERIFY_SSL")
    if verify is not None and verify.lower() in ("0", "false"):
        kwargs["verify"] = False
    elif bundle := env.get("AWS_CA_BUNDLE"):
        kwargs["verify"] = bundle
    return boto3.client("s3", **kwargs)


class S3Store:
    """``s3://bucket/key``: one object per file under ``key/`` (KServe's ``_download_s3``)."""

    def __init__(self, uri: str, client: Any) -> None:
        scheme, _, rest = uri.partition("://")
        bucket, _, key = rest.partition("/")
        if scheme != "s3" or not bucket:
            raise StorageError(uri, "expected s3://bucket/path")
        self.uri, self.bucket = uri, bucket
        self.prefix = key.strip("/") + "/" if key.strip("/") else ""
        self._client = client

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise StorageError(self.uri, f"{what} failed: {code} ({exc})") from None
        # Connection refused, DNS, timeouts, credentials (botocore); a failed transfer
        # (boto3's S3UploadFailedError wraps the ClientError); a local file unreadable.
        except (BotoCoreError, Boto3Error, OSError) as exc:
            raise StorageError(self.uri, f"{what} failed: {exc}") from None

    def check(self) -> None:
        self._call("reaching the bucket", self._client.head_bucket, Bucket=self.bucket)

    def _remote(self) -> dict[str, int]:
        files: dict[str, int] = {}
        token: dict[str, str] = {}
        while True:
            page = self._call(
                "listing",
                self._client.list_objects_v2,
                Bucket=self.bucket,
                Prefix=self.prefix,
                **token,
            )
            for obj in page.get("Contents", []):
                files[obj["Key"][len(self.prefix) :]] = int(obj["Size"])
            if not page.get("IsTruncated"):
                return files
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def _read(self, rel: str) -> bytes:
        body = self._call(
            f"reading {rel}", self._client.get_object, Bucket=self.bucket, Key=self.prefix + rel
        )
        return body["Body"].read()

    def upload(self, repository: Path, manifest_rel: str) -> UploadResult:
        if not self.prefix:
            raise StorageError(self.uri, "refusing to write a repository at a bucket's root")
        local_manifest = _check_manifest_rel(repository, manifest_rel, self.uri)
        local = local_files(repository)
        empty = sorted(rel for rel, size in local.items() if size == 0)
        if empty:
            raise StorageError(
                self.uri,
                f"{empty[0]} is empty, and KServe's S3 download skips empty objects "
                "(kserve_storage._download_s3), so the load would fail its manifest check",
            )
        self.check()
        remote = self._remote()
        remote_manifest = self._read(manifest_rel) if manifest_rel in remote else None
        writes, stale = plan_upload(
            local, remote, manifest_rel, remote_manifest, local_manifest, self.uri
        )
        done: list[str] = []
        try:
            for rel in stale:
                self._call(
                    f"removing stale {rel}",
                    self._client.delete_object,
                    Bucket=self.bucket,
                    Key=self.prefix + rel,
                )
            for rel in writes:
                self._call(
                    f"uploading {rel}",
                    self._client.upload_file,
                    Filename=str(repository / rel),
                    Bucket=self.bucket,
                    Key=self.prefix + rel,
                )
                done.append(rel)
        except StorageError as exc:
            if remote_manifest is None:
                left = self._remove(done)
                raise StorageError(self.uri, exc.reason + _cleanup_note(left)) from None
            raise
        return UploadResult(self.uri, tuple(writes))

    def _remove(self, rels: list[str]) -> list[str]:
        """Best-effort delete after a failed upload; return what could not be removed."""
        left = []
        for rel in rels:
            try:
                self._client.delete_object(Bucket=self.bucket, Key=self.prefix + rel)
            except Exception:  # the storage is failing already: report what is left, go on
                left.append(rel)
        return left


def _cleanup_note(left: list[str]) -> str:
    if not left:
        return "; the files this attempt wrote were removed (no manifest was written)"
    return (
        f"; {len(left)} file(s) this attempt wrote could not be removed (e.g. {left[0]}), "
        "but without the manifest no load accepts them; publishing again replaces them"
    )


# --------------------------------------------------------------------------- pvc


class FilesystemStore:
    """``pvc://claim/path`` with the claim mounted at ``mount``: ``<mount>/<path>/``.

    The repository is copied to a hidden staging directory beside the target and renamed
    into place, so readers see all of it or nothing.
    """

    def __init__(self, uri: str, mount: Path) -> None:
        scheme, _, rest = uri.partition("://")
        claim, _, path = rest.partition("/")
        if scheme != "pvc" or not claim:
            raise StorageError(uri, "expected pvc://claim/path")
        self.uri, self.mount = uri, Path(mount)
        self.target = self.mount / path.strip("/")

    def check(self) -> None:
        if not self.mount.is_dir() or not os.access(self.mount, os.W_OK):
            raise StorageError(
                self.uri, f"the claim's mount {self.mount} is not a writable directory here"
            )

    def upload(self, repository: Path, manifest_rel: str) -> UploadResult:
        target = self.target
        if target == self.mount:
            raise StorageError(self.uri, "refusing to write a repository at a claim's root")
        local_manifest = _check_manifest_rel(repository, manifest_rel, self.uri)
        self.check()
        remote_manifest_path = target / manifest_rel
        remote_manifest = (
            remote_manifest_path.read_bytes() if remote_manifest_path.is_file() else None
        )
        local = local_files(repository)
        remote = local_files(target) if target.is_dir() else {}
        writes, stale = plan_upload(
            local, remote, manifest_rel, remote_manifest, local_manifest, self.uri
        )
        if not writes and not stale:
            return UploadResult(self.uri, ())
        # Not there, partial (no manifest) or damaged: build it whole beside it, swap it in.
        staging = target.parent / f".{target.name}.staging-{uuid.uuid4().hex[:8]}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(repository, staging)
            if target.exists():
                old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
                target.rename(old)
                staging.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise StorageError(self.uri, f"writing {target} failed: {exc}") from None
        return UploadResult(self.uri, tuple(writes))


# --------------------------------------------------------------------------- https


def archive(repository: Path, manifest_rel: str) -> bytes:
    """The repository as a gzipped tar, byte-for-byte the same for the same files.

    Fixed order (the manifest last), times, owners and modes, so publishing the same
    repository twice gives the same bytes, which is how an existing archive is recognised.
    """
    buffer = io.BytesIO()
    files = sorted(local_files(repository), key=lambda rel: (rel == manifest_rel, rel))
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel in files:
            data = (repository / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class HttpArchiveStore:
    """``https://.../triton.tar.gz``: one archive that KServe's URI download unpacks.

    KServe's ``_download_from_uri`` takes the MIME type from the URL's path
    (``mimetypes.guess_type``: ``.tar.gz`` is ``application/x-tar`` with gzip encoding),
    requires a tar ``Content-Type`` in the answer, gunzips and unpacks into the model
    directory. MLflow's artifact proxy (``PUT``/``GET /api/2.0/mlflow-artifacts/artifacts/...``)
    stores and serves such a file with ``Content-Type: application/x-tar``. One ``PUT`` holds
    the whole repository, so a reader gets all of it or a 404.
    """

    def __init__(
        self, uri: str, session: Any | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        import requests

        if not uri.startswith(("https://", "http://")):
            raise StorageError(uri, "expected https://")
        self.uri = uri
        self._session = session or requests.Session()
        self._headers = dict(headers or {})

    def _request(
        self, what: str, method: str, extra_headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Any:
        import requests

        headers = {**self._headers, **(extra_headers or {})}
        try:
            return self._session.request(method, self.uri, headers=headers, timeout=60, **kwargs)
        except requests.RequestException as exc:
            raise StorageError(self.uri, f"{what} failed: {exc}") from None

    def check(self) -> None:
        answer = self._request("reaching the server", "HEAD")
        if answer.status_code >= 500 or answer.status_code in (401, 403):
            raise StorageError(self.uri, f"reaching the server failed: HTTP {answer.status_code}")

    def upload(self, repository: Path, manifest_rel: str) -> UploadResult:
        if not self.uri.endswith(".tar.gz"):
            raise StorageError(self.uri, "KServe unpacks only an archive: expected .../*.tar.gz")
        _check_manifest_rel(repository, manifest_rel, self.uri)
        body = archive(repository, manifest_rel)
        existing = self._request("reading the existing archive", "GET")
        if existing.status_code == 200:
            if hashlib.sha256(existing.content).digest() == hashlib.sha256(body).digest():
                return UploadResult(self.uri, ())
            raise StorageConflict(
                self.uri,
                "holds a different archive for this version; refusing to overwrite what may "
                "be serving. Publish a new version instead.",
            )
        if existing.status_code != 404:
            raise StorageError(
                self.uri, f"reading the existing archive failed: HTTP {existing.status_code}"
            )
        answer = self._request("uploading", "PUT", _TAR_GZ, data=body)
        if not 200 <= answer.status_code < 300:
            raise StorageError(self.uri, f"uploading failed: HTTP {answer.status_code}")
        return UploadResult(self.uri, tuple(sorted(local_files(repository))))


_TAR_GZ = {"Content-Type": "application/x-tar"}


def _http_headers(uri: str, env: Mapping[str, str]) -> dict[str, str]:
    """KServe's ``<host>-headers`` JSON variable, else MLflow's token or basic credentials."""
    host = urlsplit(uri).hostname or ""
    if raw := env.get(f"{host}-headers"):
        return {str(k): str(v) for k, v in json.loads(raw).items()}
    if token := env.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {encoded}"}
    return {}


# --------------------------------------------------------------------------- factory


def pvc_mounts(text: str) -> dict[str, Path]:
    """Parse ``claim=/dir,other=/dir`` (``--pvc-mount``, ``$MODELDEPLOY_PVC_MOUNTS``)."""
    mounts: dict[str, Path] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        claim, sep, path = item.partition("=")
        if not sep or not claim.strip() or not path.strip():
            raise ValueError(f"PVC mount {item!r}: expected CLAIM=/mounted/dir")
        mounts[claim.strip()] = Path(path.strip())
    return mounts


def open_store(
    uri: str,
    *,
    mounts: Mapping[str, Path] | None = None,
    env: Mapping[str, str] | None = None,
) -> RepositoryStore:
    """The store behind a Triton storage URI; :class:`StorageError` for what cannot be written.

    ``s3://`` uses boto3 with KServe's environment variables; ``pvc://claim/...`` needs
    where that claim is mounted on this machine (``mounts``, else ``$MODELDEPLOY_PVC_MOUNTS``).
    """
    env = os.environ if env is None else env
    scheme = uri.partition("://")[0]
    if scheme == "s3":
        return S3Store(uri, _s3_client(env))
    if scheme == "pvc":
        claim = uri.partition("://")[2].partition("/")[0]
        known = dict(mounts) if mounts is not None else pvc_mounts(env.get(PVC_MOUNTS_ENV, ""))
        if claim not in known:
            raise StorageError(
                uri,
                f"say where claim {claim!r} is mounted here (--pvc-mount {claim}=/dir or "
                f"${PVC_MOUNTS_ENV})",
            )
        return FilesystemStore(uri, known[claim])
    if scheme == "https":
        return HttpArchiveStore(uri, headers=_http_headers(uri, env))
    raise StorageError(
        uri,
        f"publishing cannot upload to {scheme}:// (s3://, pvc:// and https:// can be); copy "
        "the repository there yourself (``fetch_triton``, then e.g. ``gsutil rsync``)",
    )
