"""A Triton repository as one archive behind MLflow's artifact proxy, unpacked by KServe.

A real ``mlflow server`` serves ``PUT``/``GET /api/2.0/mlflow-artifacts/artifacts/...`` (its
own artifact destination in a temporary directory); the archive is read back with
``kserve_storage.Storage.download`` (KServe's ``_download_from_uri``), which checks the
``Content-Type`` MLflow answers with and unpacks it. Plain ``http://`` on loopback stands
in for ``https://``: KServe matches both with one pattern (``https?://(.+)/(.+)``) and
handles them alike; ``triton_uri`` composes the ``https://`` form.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import kserve_storage
import pytest

from modeldeploy.registry import manifest as manifests
from modeldeploy.registry.storage import HttpArchiveStore, StorageConflict
from modeldeploy.registry.triton import build_repository, manifest_rel, triton_uri
from modeldeploy.serving.triton.backend_model import registry_version, verify_unit
from tests.support.processes import ManagedProcess, free_port, http_ok, start_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifact_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    root = tmp_path_factory.mktemp("mlflow-proxy")
    port = free_port()
    proc = start_process(
        "mlflow-proxy",
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        root / "logs",
        lambda: http_ok(f"http://127.0.0.1:{port}/health"),
        port=port,
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        cwd=root,
        timeout=90,
    )
    try:
        yield proc
    finally:
        proc.stop()


def test_archive_round_trips_through_mlflow_into_kserves_model_dir(
    artifact_proxy: ManagedProcess, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{artifact_proxy.port}/api/2.0/mlflow-artifacts/artifacts/triton"
    uri = triton_uri(base.replace("http://", "https://", 1), "reviews", "4").replace(
        "https://", "http://", 1
    )
    assert uri == f"{base}/reviews/4/triton.tar.gz"
    repository = build_repository(tiny_checkpoint, tmp_path / "repo", "reviews", "4")
    HttpArchiveStore(base).check()  # what publishing asks of the base before registering
    store = HttpArchiveStore(uri)
    store.check()
    first = store.upload(repository, manifest_rel("reviews", "4"))
    assert manifest_rel("reviews", "4") in first.written and not first.unchanged

    model_dir = Path(kserve_storage.Storage.download(uri, str(tmp_path / "mnt-models")))
    manifests.verify(model_dir, manifests.build_manifest(repository))
    verify_unit(model_dir, "reviews", "reviews", "1")  # what model.py checks at load
    assert registry_version(model_dir / "reviews" / "1", "1") == "4"  # its metrics' version

    assert store.upload(repository, manifest_rel("reviews", "4")).unchanged
    labels = repository / "reviews" / "1" / "labels.json"
    labels.write_text(labels.read_text() + " ")
    with pytest.raises(StorageConflict, match=r"triton\.tar\.gz: holds a different archive"):
        store.upload(repository, manifest_rel("reviews", "4"))
