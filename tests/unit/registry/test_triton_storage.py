"""Uploading a Triton repository to its storage URI: manifest last, idempotent, named errors."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.registry.storage import (
    FilesystemStore,
    HttpArchiveStore,
    StorageConflict,
    StorageError,
    UploadResult,
    archive,
    open_store,
    plan_upload,
    pvc_mounts,
)
from modeldeploy.registry.triton import TAG_TRITON_ARTIFACT, TAG_TRITON_URI, upload_triton
from tests.support.in_memory_registry import InMemoryRegistry
from tests.support.processes import free_port

MANIFEST = "m/modeldeploy-manifest-1.json"
URI = "pvc://models/triton/m/1/triton"


def make_repository(root: Path, weights: bytes = b"weights", manifest: bytes = b"{1}") -> Path:
    (root / "m" / "1").mkdir(parents=True)
    (root / "m" / "config.pbtxt").write_text('name: "m"')
    (root / "m" / "1" / "model.onnx").write_bytes(weights)
    (root / MANIFEST).write_bytes(manifest)
    return root


# ------------------------------------------------------------------ plan_upload (pure)


def test_plan_for_an_empty_destination_writes_everything_with_the_manifest_last() -> None:
    local = {"a": 1, MANIFEST: 3, "b/c": 2}
    writes, stale = plan_upload(local, {}, MANIFEST, None, b"x", URI)
    assert writes == ["a", "b/c", MANIFEST] and stale == []


def test_plan_for_the_same_complete_repository_is_empty() -> None:
    local = {"a": 1, MANIFEST: 3}
    assert plan_upload(local, dict(local), MANIFEST, b"x", b"x", URI) == ([], [])


def test_plan_repairs_missing_files_and_drops_strays_under_the_same_manifest() -> None:
    local = {"a": 1, "b": 2, MANIFEST: 3}
    remote = {"a": 1, "b": 9, "stray": 4, MANIFEST: 3}
    assert plan_upload(local, remote, MANIFEST, b"x", b"x", URI) == (["b"], ["stray"])


def test_plan_refuses_a_different_manifest_naming_the_uri() -> None:
    with pytest.raises(StorageConflict, match=r"pvc://models/triton/m/1/triton.*differs"):
        plan_upload({MANIFEST: 3}, {MANIFEST: 3}, MANIFEST, b"old", b"new", URI)


def test_a_partial_upload_without_manifest_is_rewritten_whole() -> None:
    local = {"a": 1, "b": 2, MANIFEST: 3}
    writes, stale = plan_upload(local, {"a": 1, "z": 5}, MANIFEST, None, b"x", URI)
    assert writes == ["a", "b", MANIFEST] and stale == ["z"]


# ------------------------------------------------------------------ the filesystem store


def test_filesystem_upload_lands_at_the_uri_path_and_repeats_as_a_no_op(tmp_path: Path) -> None:
    repo = make_repository(tmp_path / "repo")
    store = FilesystemStore(URI, tmp_path / "claim")
    (tmp_path / "claim").mkdir()

    first = store.upload(repo, MANIFEST)
    target = tmp_path / "claim" / "triton" / "m" / "1" / "triton"
    assert first.written[-1] == MANIFEST and set(first.written) == {
        "m/config.pbtxt",
        "m/1/model.onnx",
        MANIFEST,
    }
    assert (target / "m" / "1" / "model.onnx").read_bytes() == b"weights"
    before = os.stat(target / MANIFEST).st_mtime_ns

    again = store.upload(repo, MANIFEST)
    assert again == UploadResult(URI, ()) and again.unchanged
    assert os.stat(target / MANIFEST).st_mtime_ns == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["triton"]  # no staging left


def test_filesystem_refuses_a_different_repository_and_leaves_the_old_one(tmp_path: Path) -> None:
    (tmp_path / "claim").mkdir()
    store = FilesystemStore(URI, tmp_path / "claim")
    store.upload(make_repository(tmp_path / "one"), MANIFEST)
    other = make_repository(tmp_path / "two", weights=b"other", manifest=b"{2}")
    with pytest.raises(StorageConflict, match="pvc://models/triton/m/1/triton"):
        store.upload(other, MANIFEST)
    target = tmp_path / "claim" / "triton" / "m" / "1" / "triton"
    assert (target / "m" / "1" / "model.onnx").read_bytes() == b"weights"


def test_filesystem_replaces_a_leftover_without_manifest(tmp_path: Path) -> None:
    target = tmp_path / "claim" / "triton" / "m" / "1" / "triton"
    (target / "m" / "1").mkdir(parents=True)
    (target / "m" / "1" / "model.onnx").write_bytes(b"half")
    (target / "m" / "1" / "junk").write_bytes(b"x")
    FilesystemStore(URI, tmp_path / "claim").upload(make_repository(tmp_path / "r"), MANIFEST)
    assert (target / "m" / "1" / "model.onnx").read_bytes() == b"weights"
    assert not (target / "m" / "1" / "junk").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["triton"]


def test_an_unmounted_claim_is_a_storage_error_naming_the_uri(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"pvc://models/triton/m/1/triton.*not a writable"):
        FilesystemStore(URI, tmp_path / "absent").upload(make_repository(tmp_path / "r"), MANIFEST)


def test_a_repository_without_its_manifest_is_not_uploaded(tmp_path: Path) -> None:
    repo = make_repository(tmp_path / "r")
    (repo / MANIFEST).unlink()
    (tmp_path / "claim").mkdir()
    with pytest.raises(StorageError, match="no manifest"):
        FilesystemStore(URI, tmp_path / "claim").upload(repo, MANIFEST)
    assert not (tmp_path / "claim" / "triton").exists()


# ------------------------------------------------------------------ open_store


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://bucket/x/m/1/triton", "cannot upload to gs://"),
        ("pvc://other/x", "claim 'other' is mounted"),
    ],
)
def test_open_store_names_what_it_cannot_write(uri: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=message):
        open_store(uri, env={"MODELDEPLOY_PVC_MOUNTS": f"models={tmp_path}"})


def test_an_https_upload_needs_an_archive_path(tmp_path: Path) -> None:
    store = open_store("https://host/x/m/1/triton", env={})
    with pytest.raises(StorageError, match=r"https://host/x/m/1/triton: .*\.tar\.gz"):
        store.upload(make_repository(tmp_path / "r"), MANIFEST)


def test_an_unreachable_https_server_is_named(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}/t/m/1/triton.tar.gz"
    with pytest.raises(StorageError, match=rf"{uri}: reaching the server failed"):
        HttpArchiveStore(uri).check()
    with pytest.raises(StorageError, match=rf"{uri}: reading the existing archive failed"):
        HttpArchiveStore(uri).upload(make_repository(tmp_path / "r"), MANIFEST)


def test_the_archive_is_the_same_bytes_for_the_same_files_manifest_last(tmp_path: Path) -> None:
    one = archive(make_repository(tmp_path / "one"), MANIFEST)
    two = archive(make_repository(tmp_path / "two"), MANIFEST)
    assert one == two
    with tarfile.open(fileobj=io.BytesIO(one), mode="r:gz") as tar:
        names = tar.getnames()
        assert names[-1] == MANIFEST
        assert set(names) == {"m/config.pbtxt", "m/1/model.onnx", MANIFEST}
        member = tar.extractfile("m/1/model.onnx")
        assert member is not None and member.read() == b"weights"
    other = archive(make_repository(tmp_path / "three", weights=b"other"), MANIFEST)
    assert other != one


def test_https_credentials_follow_kserve_then_mlflow() -> None:
    uri = "https://mlflow.example/api/2.0/mlflow-artifacts/artifacts/t/m/1/triton.tar.gz"
    kserve = {"mlflow.example-headers": '{"X-Token": "a"}', "MLFLOW_TRACKING_TOKEN": "b"}
    assert open_store(uri, env=kserve)._headers == {"X-Token": "a"}  # type: ignore[attr-defined]
    token = {"MLFLOW_TRACKING_TOKEN": "b"}
    assert open_store(uri, env=token)._headers == {"Authorization": "Bearer b"}  # type: ignore[attr-defined]


def test_pvc_mounts_come_from_the_environment(tmp_path: Path) -> None:
    store = open_store("pvc://models/a", env={"MODELDEPLOY_PVC_MOUNTS": f"models={tmp_path}"})
    assert isinstance(store, FilesystemStore) and store.target == tmp_path / "a"
    assert pvc_mounts(" a=/x , b=/y ") == {"a": Path("/x"), "b": Path("/y")}
    with pytest.raises(ValueError, match="CLAIM="):
        pvc_mounts("justaname")


def test_s3_store_reads_kserves_variables() -> None:
    store = open_store(
        "s3://bucket/base",
        env={
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_DEFAULT_REGION": "eu-west-3",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
        },
    )
    client = store._client  # type: ignore[attr-defined]
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == "eu-west-3"
    assert client.meta.config.s3["addressing_style"] == "path"


# ------------------------------------------------------------------ through publishing


class FailingUpload:
    """A reachable store whose upload fails, as a bucket that refuses a write would."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def check(self) -> None:
        pass

    def upload(self, repository: Path, manifest_rel: str) -> UploadResult:
        raise StorageError(self.uri, "uploading m/1/model.onnx failed: AccessDenied")


def test_an_unreachable_store_registers_nothing(tmp_path: Path, tiny_checkpoint: Path) -> None:
    registry = InMemoryRegistry(store_dir=tmp_path / "store")
    with pytest.raises(StorageError, match=r"pvc://models/triton: .*not a writable"):
        publish_checkpoint(
            registry,
            tiny_checkpoint,
            "reviews",
            triton_base_uri="pvc://models/triton",
            triton_store=lambda uri: FilesystemStore(uri, tmp_path / "absent"),
        )
    assert "create_version" not in registry.calls


@pytest.mark.slow
def test_a_failed_upload_sets_no_uri_or_alias_and_upload_triton_completes_it(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    registry = InMemoryRegistry(store_dir=tmp_path / "store")
    with pytest.raises(
        StorageError,
        match=r"pvc://models/triton/reviews/1/triton: .*AccessDenied; version 1 is registered "
        r"without it .*upload-triton reviews 1 --triton-base-uri pvc://models/triton",
    ):
        publish_checkpoint(
            registry,
            tiny_checkpoint,
            "reviews",
            alias="challenger",
            triton_base_uri="pvc://models/triton",
            triton_store=FailingUpload,
        )
    version = registry.get_version("reviews", "1")
    assert TAG_TRITON_ARTIFACT in version.tags and TAG_TRITON_URI not in version.tags
    assert "challenger" not in registry.get_model("reviews").aliases

    (tmp_path / "claim").mkdir()
    result = upload_triton(
        registry,
        "reviews",
        "1",
        "pvc://models/triton",
        store=lambda u: FilesystemStore(u, tmp_path / "claim"),
    )
    uri = result.uri
    assert uri == "pvc://models/triton/reviews/1/triton" and not result.unchanged
    assert registry.get_version("reviews", "1").tags[TAG_TRITON_URI] == uri
    assert (tmp_path / "claim" / "triton" / "reviews" / "1" / "triton" / "reviews").is_dir()


# ------------------------------------------------------------------ the operator agrees


@pytest.mark.slow
@pytest.mark.parametrize("base", ["pvc://models/triton", "https://mlflow.example/a/triton"])
def test_the_operators_storage_uri_is_where_publishing_uploaded(
    base: str, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """Both sides call ``triton_uri``; this pins that the InferenceService names the upload."""
    from modeldeploy.operator.api.status import VersionRef
    from modeldeploy.operator.api.types import parse_spec
    from modeldeploy.operator.platforms import kserve_manifests
    from modeldeploy.operator.platforms.base import Target
    from modeldeploy.operator.settings import KServeSettings

    registry = InMemoryRegistry(store_dir=tmp_path / "store")
    uploaded: list[str] = []

    def store(uri: str) -> FilesystemStore | RecordingStore:
        if uri.startswith("https://"):
            return RecordingStore(uri, uploaded)
        (tmp_path / "claim").mkdir(exist_ok=True)
        return FilesystemStore(uri, tmp_path / "claim")

    info = publish_checkpoint(
        registry, tiny_checkpoint, "sentiment", triton_base_uri=base, triton_store=store
    )
    model = {"name": "sentiment", "registryUri": "http://mlflow:5000"}
    isvc = kserve_manifests.inference_service(
        Target("sentiment", "ml", parse_spec({"model": model, "runtime": "triton"}), uid="u-1"),
        VersionRef(info.version, "aa", "models:/m-1"),
        cfg=KServeSettings(triton_base_uri=base),
    )
    storage_uri = isvc["spec"]["predictor"]["model"]["storageUri"]
    assert storage_uri == registry.get_version("sentiment", info.version).tags[TAG_TRITON_URI]
    if base.startswith("pvc://"):
        assert (tmp_path / "claim" / "triton" / "sentiment" / "1" / "triton").is_dir()
    else:
        assert uploaded == [storage_uri] and storage_uri.endswith("/1/triton.tar.gz")


class RecordingStore:
    """Records the URI it was asked to upload to (the https path is tested against MLflow)."""

    def __init__(self, uri: str, log: list[str]) -> None:
        self.uri, self._log = uri, log

    def check(self) -> None:
        pass

    def upload(self, repository: Path, manifest_rel: str) -> UploadResult:
        self._log.append(self.uri)
        return UploadResult(self.uri, (manifest_rel,))
