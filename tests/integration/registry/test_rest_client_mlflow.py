"""The REST client reads exactly what the MLflow client reads, from one real server.

The registry contract checks behaviour; this checks every field the platform types carry
(tags, source, run id, timestamps, descriptions, aliases), read through both clients from
the same ``mlflow server``, and that a stopped server is ``RegistryUnavailable`` to both.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from modeldeploy.registry.base import RegistryUnavailable
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.rest_client import RestRegistry
from tests.support.mlflow_server import start_mlflow

pytestmark = pytest.mark.slow


def test_both_clients_read_the_same_fields(mlflow_server, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "config.json").write_text("{}")
    full, rest = MlflowRegistry(mlflow_server.url), RestRegistry(mlflow_server.url)
    model = f"parity-{uuid.uuid4().hex[:8]}"
    v1 = full.create_version(model, files, tags={"kind": "a", "modeldeploy.x": "1"})
    v2 = rest.create_version(model, files, tags={"kind": "b"}, description="second")
    rest.set_alias(model, "champion", v1.version)
    rest.set_alias(model, "challenger", v2.version)
    rest.set_version_tag(model, v1.version, "note", "hé ünïcode")

    assert rest.get_model(model) == full.get_model(model)
    for version in (v1.version, v2.version):
        assert rest.get_version(model, version) == full.get_version(model, version)
    assert rest.search_versions(model, max_results=5) == full.search_versions(model, max_results=5)
    rest_listing = {m.name: m for m in rest.list_models()}
    full_listing = {m.name: m for m in full.list_models()}
    assert rest_listing[model] == full_listing[model]
    read = rest.get_version(model, v1.version)
    assert read.tags["note"] == "hé ünïcode" and read.run_id and read.created_ms > 0
    assert rest.get_version(model, v2.version).description == "second"


def test_a_stopped_server_is_unavailable_to_both(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server = start_mlflow(tmp_path / "mlflow")
    rest = RestRegistry(server.url)
    assert rest.is_online()
    server.stop()
    assert not rest.is_online()
    for client in (rest, MlflowRegistry(server.url)):
        with pytest.raises(RegistryUnavailable):
            client.get_model("anything")
