"""Local mode keeps registry credentials out of state.json and predictor arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.operator.local.cli import load_manifest
from modeldeploy.operator.local.runner import LocalOperator
from modeldeploy.operator.local.state import StateDir
from modeldeploy.registry.uris import PASSWORD_ENV, USERNAME_ENV

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(USERNAME_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


def test_the_flag_uri_is_stored_clean_and_its_credentials_go_to_the_environment(
    tmp_path: Path,
) -> None:
    import os

    op = LocalOperator(
        StateDir(tmp_path), registry_uri="http://alice:s3cret@127.0.0.1:9", out=print
    )
    op.apply(load_manifest(ROOT / "examples/local-demo.yaml"))
    assert "s3cret" not in (tmp_path / "state.json").read_text()
    assert StateDir(tmp_path).load()["spec"]["model"]["registryUri"] == "http://127.0.0.1:9"
    assert op.target().registry_uri == "http://127.0.0.1:9"
    assert os.environ[USERNAME_ENV] == "alice" and os.environ[PASSWORD_ENV] == "s3cret"


def test_a_spec_uri_with_credentials_is_stored_clean(tmp_path: Path) -> None:
    manifest = load_manifest(ROOT / "examples/local-demo.yaml")
    manifest["spec"]["model"]["registryUri"] = "https://bob:hunter2@mlflow.example/base"
    LocalOperator(StateDir(tmp_path), out=print).apply(manifest)
    text = (tmp_path / "state.json").read_text()
    assert "hunter2" not in text and "https://mlflow.example/base" in text
