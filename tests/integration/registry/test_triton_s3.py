"""A version's Triton repository through a real S3 API, fetched back by KServe's own code.

``moto_server`` runs as a process (a real S3 HTTP API on loopback); publishing goes through
a real MLflow server; the upload is read back with ``kserve_storage.Storage.download``
(kserve-storage 0.21.0, the storage initializer's package, installed without its GCS/Azure/HF
dependencies, which the s3 path does not import), then checked with the manifest check the
Triton ``model.py`` runs at load, and served by a real tritonserver.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import kserve_storage
import pytest

from modeldeploy.cli import CommandError
from modeldeploy.registry import cli as registry_cli
from modeldeploy.registry import manifest as manifests
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.registry.storage import S3Store, StorageConflict, StorageError, open_store
from modeldeploy.registry.triton import (
    TAG_TRITON_MANIFEST,
    TAG_TRITON_URI,
    fetch_triton,
    manifest_rel,
    upload_triton,
)
from modeldeploy.serving.triton.backend_model import registry_version, verify_unit
from tests.support.processes import ManagedProcess, free_port, http_ok, start_process

pytestmark = pytest.mark.slow
BUCKET = "models"
BASE = f"s3://{BUCKET}/triton"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    if shutil.which("moto_server") is None:
        pytest.fail("moto_server is not installed (the dev extra has moto[server])")
    port = free_port()
    proc = start_process(
        "moto",
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        tmp_path_factory.mktemp("moto"),
        lambda: http_ok(f"http://127.0.0.1:{port}/moto-api/"),
        port=port,
        timeout=60,
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def s3_env(moto: ManagedProcess, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The variables KServe's storage initializer gets from its S3 secret, here for moto."""
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto.port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "S3_MAX_ATTEMPTS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    return env


def objects(prefix: str) -> dict[str, Any]:
    client = boto3.client("s3")
    page = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["LastModified"] for o in page.get("Contents", [])}


def kserve_download(uri: str, out: Path) -> Path:
    """What the storage initializer does with the InferenceService's storageUri."""
    return Path(kserve_storage.Storage.download(uri, str(out)))


def test_published_repository_is_fetched_by_kserve_and_served_by_triton(
    s3_env: dict[str, str],
    registry: MlflowRegistry,
    tiny_checkpoint: Path,
    model_name: str,
    tmp_path: Path,
) -> None:
    from modeldeploy.serving.triton import TritonServer, classify

    info = publish_checkpoint(
        registry, tiny_checkpoint, model_name, alias="challenger", triton_base_uri=BASE
    )
    tags = registry.get_version(model_name, info.version).tags
    uri = tags[TAG_TRITON_URI]
    assert uri == f"{BASE}/{model_name}/{info.version}/triton"
    assert registry.get_model(model_name).aliases["challenger"] == info.version

    repository = kserve_download(uri, tmp_path / "mnt-models")
    manifests.verify(repository, manifests.from_json(tags[TAG_TRITON_MANIFEST]))
    verify_unit(repository, model_name, model_name, "1")  # model.py's load check
    assert registry_version(repository / model_name / "1", "1") == info.version
    with TritonServer(repository) as triton:
        triton.load(model_name)
        result = classify(triton.http_url, model_name, ["a fine film", "dull"])
    assert result.model_version == "1" and len(result.labels) == 2  # Triton version 1 for all


def test_republishing_is_a_no_op_and_another_repository_is_refused(
    s3_env: dict[str, str],
    registry: MlflowRegistry,
    tiny_checkpoint: Path,
    model_name: str,
    tmp_path: Path,
) -> None:
    info = publish_checkpoint(registry, tiny_checkpoint, model_name, triton_base_uri=BASE)
    uri = registry.get_version(model_name, info.version).tags[TAG_TRITON_URI]
    prefix = uri.removeprefix(f"s3://{BUCKET}/") + "/"
    before = objects(prefix)

    assert upload_triton(registry, model_name, info.version, BASE).unchanged
    repository = fetch_triton(registry, model_name, info.version, tmp_path / "again")
    result = open_store(uri).upload(repository, manifest_rel(model_name, info.version))
    assert result.unchanged
    assert objects(prefix) == before  # same keys, nothing rewritten

    (repository / model_name / info.version / "labels.json").write_text('{"0": "x", "1": "y"}')
    manifest_file = repository / manifest_rel(model_name, info.version)
    manifest_file.write_text(manifest_file.read_text().replace('"size"', '"size" ', 1))
    with pytest.raises(StorageConflict, match=uri):
        open_store(uri).upload(repository, manifest_rel(model_name, info.version))
    assert objects(prefix) == before


class FailOnSecondUpload:
    """The real boto3 client; its second ``upload_file`` goes to a bucket that does not exist,
    so S3 itself refuses that transfer (boto3 raises ``S3UploadFailedError``)."""

    def __init__(self, client: Any) -> None:
        self._client, self._uploads = client, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_file(self, **kwargs: Any) -> None:
        self._uploads += 1
        if self._uploads == 2:
            kwargs["Bucket"] = "no-such-bucket"
        self._client.upload_file(**kwargs)


def test_a_failed_upload_leaves_nothing_under_the_uri(
    s3_env: dict[str, str],
    registry: MlflowRegistry,
    tiny_checkpoint: Path,
    model_name: str,
    tmp_path: Path,
) -> None:
    info = publish_checkpoint(
        registry, tiny_checkpoint, model_name, triton_base_uri=BASE, triton_store=None
    )
    repository = fetch_triton(registry, model_name, info.version, tmp_path / "repo")
    uri = f"{BASE}/{model_name}/{info.version}/triton"
    store = S3Store(uri, FailOnSecondUpload(boto3.client("s3")))
    with pytest.raises(StorageError, match=rf"{uri}: uploading .*NoSuchBucket.*were removed"):
        store.upload(repository, manifest_rel(model_name, info.version))
    assert objects(uri.removeprefix(f"s3://{BUCKET}/")) == {}
    with pytest.raises(RuntimeError, match="No model found"):  # KServe sees nothing at all
        kserve_download(uri, tmp_path / "mnt-models")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="modeldeploy")
    registry_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        code = int(args.handler(args) or 0)
    except CommandError as exc:
        print(f"error: {exc}")
        code = 1
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("endpoint", "bucket", "message"),
    [
        ("closed", BUCKET, "reaching the bucket failed: Could not connect"),
        ("moto", "no-such-bucket", "reaching the bucket failed: 404"),
    ],
)
def test_an_unreachable_bucket_is_named_and_registers_nothing(
    s3_env: dict[str, str],
    mlflow_server,
    tiny_checkpoint: Path,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    endpoint: str,
    bucket: str,
    message: str,
) -> None:
    if endpoint == "closed":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    base = f"s3://{bucket}/triton"
    code, out = run_cli(
        [
            "registry",
            "publish",
            str(tiny_checkpoint),
            "--model",
            model_name,
            "--triton-base-uri",
            base,
            "--registry-uri",
            mlflow_server.url,
        ],
        capsys,
    )
    assert code == 1
    assert f"error: Triton repository at {base}: {message}" in out
    assert MlflowRegistry(mlflow_server.url).search_versions(model_name, max_results=5)[0] == []


def test_cli_publishes_to_a_mounted_claim_and_upload_triton_copies_to_s3(
    s3_env: dict[str, str],
    mlflow_server,
    tiny_checkpoint: Path,
    model_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry_uri = ["--registry-uri", mlflow_server.url]
    claim = tmp_path / "claim"
    claim.mkdir()
    publish = ["registry", "publish", str(tiny_checkpoint), "--model", model_name]
    to_claim = ["--triton-base-uri", "pvc://models/triton", "--pvc-mount", f"models={claim}"]
    code, out = run_cli([*publish, *to_claim, *registry_uri], capsys)
    pvc_uri = f"pvc://models/triton/{model_name}/1/triton"
    assert code == 0 and f"Triton repository at {pvc_uri}" in out
    assert (claim / "triton" / model_name / "1" / "triton" / manifest_rel(model_name, 1)).is_file()

    upload = ["registry", "upload-triton", model_name, "1", "--triton-base-uri", BASE]
    code, out = run_cli([*upload, *registry_uri], capsys)
    assert code == 0 and f"Triton repository at {BASE}/{model_name}/1/triton (" in out
    assert "files uploaded)" in out
    code, out = run_cli([*upload, *registry_uri], capsys)  # the same repository is there
    assert code == 0 and out.rstrip().endswith("(already in place)")
    repository = kserve_download(f"{BASE}/{model_name}/1/triton", tmp_path / "mnt-models")
    verify_unit(repository, model_name, model_name, "1")
