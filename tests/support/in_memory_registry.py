"""An in-memory RegistryClient for UNIT TESTS ONLY.

It follows the contract in ``base`` closely enough to test the logic built on it
(watcher diffs, decisions, fetch verification) in milliseconds. The product and the
integration tests always use :class:`~modeldeploy.registry.mlflow_client.MlflowRegistry`
against a real MLflow server. ``online = False`` simulates an outage.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modeldeploy.registry.base import (
    ModelVersionInfo,
    NotFound,
    RegisteredModelInfo,
    RegistryUnavailable,
    WebhookInfo,
)


@dataclass
class _Model:
    aliases: dict[str, str] = field(default_factory=dict)
    versions: dict[str, dict[str, str]] = field(default_factory=dict)  # version -> tags
    files: dict[str, Path] = field(default_factory=dict)  # version -> stored copy


class InMemoryRegistry:
    def __init__(self, store_dir: Path | None = None) -> None:
        self.store_dir = store_dir
        self.online = True
        self.calls: list[str] = []  # method names, to check what a poll costs
        self._models: dict[str, _Model] = {}
        self._webhooks: dict[str, WebhookInfo] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return "InMemoryRegistry()"

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if not self.online:
            raise RegistryUnavailable(f"{name}: registry offline")

    def _model(self, name: str) -> _Model:
        if name not in self._models:
            raise NotFound(f"model {name!r} not found")
        return self._models[name]

    def _info(self, name: str, version: str) -> ModelVersionInfo:
        model = self._model(name)
        if version not in model.versions:
            raise NotFound(f"{name!r} version {version} not found")
        aliases = tuple(sorted(a for a, v in model.aliases.items() if v == version))
        return ModelVersionInfo(name, version, dict(model.versions[version]), aliases)

    # -- RegistryClient ---------------------------------------------------------------
    def is_online(self) -> bool:
        return self.online

    def list_models(self) -> list[RegisteredModelInfo]:
        self._call("list_models")
        return [RegisteredModelInfo(n, dict(m.aliases)) for n, m in sorted(self._models.items())]

    def get_model(self, name: str) -> RegisteredModelInfo:
        self._call("get_model")
        return RegisteredModelInfo(name, dict(self._model(name).aliases))

    def search_versions(
        self, name: str, *, max_results: int, page_token: str | None = None
    ) -> tuple[list[ModelVersionInfo], str | None]:
        self._call("search_versions")
        if name not in self._models:
            return [], None
        ordered = sorted(self._models[name].versions, key=int, reverse=True)
        start = int(page_token or 0)
        page = ordered[start : start + max_results]
        token = str(start + max_results) if start + max_results < len(ordered) else None
        return [
            ModelVersionInfo(name, v, dict(self._models[name].versions[v])) for v in page
        ], token

    def get_version(self, name: str, version: str) -> ModelVersionInfo:
        self._call("get_version")
        return self._info(name, str(version))

    def create_version(
        self, name: str, local_dir: Path, *, tags: Mapping[str, str], description: str = ""
    ) -> ModelVersionInfo:
        self._call("create_version")
        model = self._models.setdefault(name, _Model())
        version = str(max((int(v) for v in model.versions), default=0) + 1)
        model.versions[version] = dict(tags)
        if self.store_dir is not None:
            copy = self.store_dir / name / version
            shutil.copytree(local_dir, copy)
            model.files[version] = copy
        return self._info(name, version)

    def add_version(self, name: str, tags: Mapping[str, str] | None = None) -> str:
        """Test helper: register a version without files."""
        model = self._models.setdefault(name, _Model())
        version = str(max((int(v) for v in model.versions), default=0) + 1)
        model.versions[version] = dict(tags or {})
        return version

    def stored_files(self, name: str, version: str) -> Path:
        """Test helper: the stored copy (what a tampering attacker would edit)."""
        return self._model(name).files[str(version)]

    def download_version(self, name: str, version: str, dst_dir: Path) -> Path:
        self._call("download_version")
        source = self._model(name).files.get(str(version))
        if source is None:
            raise NotFound(f"{name!r} version {version} has no files")
        target = dst_dir / "checkpoint"
        shutil.copytree(source, target)
        return target

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call("set_alias")
        self._info(name, str(version))
        self._model(name).aliases[alias] = str(version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._call("delete_alias")
        self._model(name).aliases.pop(alias, None)

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._call("set_version_tag")
        self._info(name, str(version))
        self._model(name).versions[str(version)][key] = value

    def delete_version_tag(self, name: str, version: str, key: str) -> None:
        self._model(name).versions[str(version)].pop(key, None)

    def log_version_artifacts(
        self, name: str, version: str, local_dir: Path, artifact_path: str
    ) -> str:
        self._call("log_version_artifacts")
        self._info(name, str(version))
        if self.store_dir is None:
            raise NotFound("InMemoryRegistry(store_dir=None) keeps no files")
        copy = self.store_dir / "artifacts" / name / str(version) / artifact_path
        shutil.copytree(local_dir, copy)
        return copy.as_uri()

    def download_artifacts(self, uri: str, dst_dir: Path) -> Path:
        self._call("download_artifacts")
        source = Path(uri.removeprefix("file://"))
        target = dst_dir / source.name
        shutil.copytree(source, target)
        return target

    def list_webhooks(self) -> list[WebhookInfo]:
        self._call("list_webhooks")
        return list(self._webhooks.values())

    def create_webhook(
        self, name: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo:
        self._call("create_webhook")
        hook = WebhookInfo(str(next(self._ids)), name, url, tuple(events))
        self._webhooks[hook.webhook_id] = hook
        return hook

    def update_webhook(
        self, webhook_id: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo:
        self._call("update_webhook")
        old = self._webhooks[webhook_id]
        hook = WebhookInfo(webhook_id, old.name, url, tuple(events))
        self._webhooks[webhook_id] = hook
        return hook
