"""The watcher's sweep against a real MLflow: the registered-model listing shows what moved.

The sweep relies on two facts of MLflow's registry: ``search_registered_models`` returns
each model's aliases, and creating a version moves the model's last-updated time. If
either stopped holding, a quiet-looking sweep would hide a change; this test would fail.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from modeldeploy.registry.base import ChangeKind
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.watcher import RegistryWatcher, WatchSettings


def test_a_sweep_skips_quiet_models_and_reads_those_that_moved(
    registry: MlflowRegistry, tmp_path: Path
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "config.json").write_text("{}")
    prefix = f"sweep-{uuid.uuid4().hex[:6]}"
    models = [f"{prefix}-{i}" for i in range(8)]
    for model in models:
        version = registry.create_version(model, files, tags={}).version
        registry.set_alias(model, "champion", version)
    settings = WatchSettings(sweep_from=8, full_every=100)
    watcher = RegistryWatcher(registry, models, settings=settings)
    watcher.poll()
    quiet = watcher.poll()
    assert quiet.changes == () and quiet.unchanged == frozenset(models)

    new = registry.create_version(models[2], files, tags={}).version  # no alias moves
    registry.set_alias(models[5], "challenger", "1")  # no new version
    result = watcher.poll()
    got = sorted((c.model, c.kind, c.version) for c in result.changes)
    assert got == [
        (models[2], ChangeKind.VERSION_CREATED, new),
        (models[5], ChangeKind.ALIAS_SET, "1"),
    ]
    assert result.unchanged == frozenset(models) - {models[2], models[5]}
