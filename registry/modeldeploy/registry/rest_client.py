"""``RestRegistry``: the RegistryClient the operator uses, MLflow's REST API without mlflow.

The operator's registry work is reads (a model's aliases, versions, the listing the
watcher polls) and small writes (move or remove an alias, tag a version). Those are
eight REST endpoints, so the operator process talks to them directly (``rest_http``)
instead of importing the MLflow client (about 100 MB more RSS for the operator). Paths, methods and
JSON fields are MLflow 3.17's, as ``mlflow/store/model_registry/rest_store.py`` calls
them (endpoints from ``mlflow/protos/model_registry.proto``'s ``ModelRegistryService``,
https://mlflow.org/docs/latest/api_reference/rest-api.html):

=====================  ======  ==========================================================
registered-models/get     GET  name -> ``registered_model`` (``aliases``: alias, version)
registered-models/search  GET  max_results, page_token -> ``registered_models``,
                               ``next_page_token``
model-versions/search     GET  filter, max_results, order_by, page_token ->
                               ``model_versions``, ``next_page_token``
model-versions/get        GET  name, version -> ``model_version`` (``tags``: key, value)
registered-models/alias  POST  name, alias, version
registered-models/alias DELETE name, alias
model-versions/set-tag   POST  name, version, key, value
/health                   GET  (the server's liveness route)
=====================  ======  ==========================================================

What needs artifact storage or MLflow's webhook entities (publishing a version,
downloading one, webhooks) is not the operator's business: those calls are handed to
:class:`~modeldeploy.registry.mlflow_client.MlflowRegistry`, imported on first use, so
the CLI and tests can use one client for everything and the operator never loads mlflow.

Credentials in the URI are handled as ``MlflowRegistry`` handles them: taken out of the
URI into ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` of this process (which this client
reads per request, and predictors started by this process inherit).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modeldeploy.registry.base import (
    ModelVersionInfo,
    RegisteredModelInfo,
    RegistryClient,
    RegistryError,
    WebhookInfo,
)
from modeldeploy.registry.rest_http import API, Transport, unsupported
from modeldeploy.registry.uris import split_credentials

log = logging.getLogger(__name__)
LIST_PAGE = 200  # registered models per listing page (what MlflowRegistry asks for)


def _int(value: Any) -> int:
    """Proto int64 fields come as JSON numbers or strings, depending on the serializer."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def version_of(data: Mapping[str, Any]) -> ModelVersionInfo:
    """A ``ModelVersion`` JSON object as the platform's ``ModelVersionInfo``."""
    tags = {str(t.get("key")): str(t.get("value", "")) for t in data.get("tags") or ()}
    return ModelVersionInfo(
        name=str(data.get("name", "")),
        version=str(data.get("version", "")),
        tags=tags,
        aliases=tuple(str(a) for a in data.get("aliases") or ()),
        source=str(data.get("source") or ""),
        run_id=str(data.get("run_id") or "") or None,
        created_ms=_int(data.get("creation_timestamp")),
        description=str(data.get("description") or ""),
    )


def model_of(data: Mapping[str, Any]) -> RegisteredModelInfo:
    """A ``RegisteredModel`` JSON object as the platform's ``RegisteredModelInfo``."""
    aliases = {str(a.get("alias")): str(a.get("version")) for a in data.get("aliases") or ()}
    return RegisteredModelInfo(
        name=str(data.get("name", "")),
        aliases=aliases,
        updated_ms=_int(data.get("last_updated_timestamp")),
        description=str(data.get("description") or ""),
    )


class RestRegistry:
    """RegistryClient over an MLflow tracking server's REST API (http or https)."""

    def __init__(self, uri: str, *, health_timeout: float = 2.0) -> None:
        if not uri:
            raise RegistryError("no registry URI given")
        clean, credentials = split_credentials(uri)
        if not clean.startswith(("http://", "https://")):
            raise RegistryError(f"{clean!r}: the REST client needs an http(s) registry URI")
        if credentials is not None:
            os.environ.update(credentials.environ())
        self.uri = clean.rstrip("/")
        self.health_timeout = health_timeout
        self._http = Transport(self.uri)
        self._full: Any = None  # MlflowRegistry, for artifacts and webhooks only

    def __repr__(self) -> str:
        return f"RestRegistry({self.uri!r})"

    def _get(self, endpoint: str, what: str, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        return self._http.call("GET", f"{API}/{endpoint}", what, query)

    def _send(self, method: str, endpoint: str, what: str, **body: Any) -> None:
        self._http.call(method, f"{API}/{endpoint}", what, body)

    # -- health ------------------------------------------------------------------------
    def is_online(self) -> bool:
        return self._http.ok("/health", self.health_timeout)

    # -- models and versions -----------------------------------------------------------
    def list_models(self) -> list[RegisteredModelInfo]:
        out: list[RegisteredModelInfo] = []
        token: str | None = None
        while True:
            page = self._get(
                "registered-models/search",
                "list registered models",
                max_results=LIST_PAGE,
                page_token=token,
            )
            out.extend(model_of(m) for m in page.get("registered_models") or ())
            token = page.get("next_page_token") or None
            if not token:
                break
        return sorted(out, key=lambda m: m.name)

    def get_model(self, name: str) -> RegisteredModelInfo:
        reply = self._get("registered-models/get", f"model {name!r}", name=name)
        return model_of(reply.get("registered_model") or {})

    def search_versions(
        self, name: str, *, max_results: int, page_token: str | None = None
    ) -> tuple[list[ModelVersionInfo], str | None]:
        if "'" in name:
            raise RegistryError(f"model name {name!r}: quotes are not supported")
        reply = self._get(
            "model-versions/search",
            f"versions of {name!r}",
            filter=f"name = '{name}'",
            max_results=max_results,
            order_by=["version_number DESC"],
            page_token=page_token,
        )
        versions = [version_of(v) for v in reply.get("model_versions") or ()]
        return versions, (reply.get("next_page_token") or None)

    def get_version(self, name: str, version: str) -> ModelVersionInfo:
        reply = self._get(
            "model-versions/get", f"{name!r} version {version}", name=name, version=str(version)
        )
        return version_of(reply.get("model_version") or {})

    # -- aliases and tags --------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: str) -> None:
        what = f"set alias {alias!r} on {name!r} version {version}"
        self._send(
            "POST", "registered-models/alias", what, name=name, alias=alias, version=str(version)
        )

    def delete_alias(self, name: str, alias: str) -> None:
        what = f"remove alias {alias!r} from {name!r}"
        self._send("DELETE", "registered-models/alias", what, name=name, alias=alias)

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        what = f"tag {name!r} version {version}"
        self._send(
            "POST",
            "model-versions/set-tag",
            what,
            name=name,
            version=str(version),
            key=key,
            value=value,
        )

    # -- artifacts and webhooks: MLflow's own client, loaded on first use -----------------
    def mlflow(self) -> Any:
        """The MLflow client for this server (imports mlflow: not for the operator)."""
        if self._full is None:
            from modeldeploy.registry.mlflow_client import MlflowRegistry

            self._full = MlflowRegistry(self.uri)
        return self._full

    def create_version(
        self, name: str, local_dir: Path, *, tags: Mapping[str, str], description: str = ""
    ) -> ModelVersionInfo:
        return self.mlflow().create_version(name, local_dir, tags=tags, description=description)

    def download_version(self, name: str, version: str, dst_dir: Path) -> Path:
        return self.mlflow().download_version(name, version, dst_dir)

    def list_webhooks(self) -> list[WebhookInfo]:
        return self.mlflow().list_webhooks()

    def create_webhook(
        self, name: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo:
        return self.mlflow().create_webhook(name, url, events, secret)

    def update_webhook(
        self, webhook_id: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo:
        return self.mlflow().update_webhook(webhook_id, url, events, secret)


def operator_registry(uri: str) -> RegistryClient:
    """The registry client for a long-running process: REST where it can be, else MLflow's.

    An http(s) URI gets :class:`RestRegistry` unless the environment asks for auth only
    MLflow's plugins provide; any other URI (``sqlite:``, ``file:``, ``databricks``) and
    that auth get :class:`~modeldeploy.registry.mlflow_client.MlflowRegistry`.
    """
    clean = split_credentials(uri)[0] if uri else uri
    reason = unsupported()
    if clean and clean.startswith(("http://", "https://")) and reason is None:
        return RestRegistry(uri)
    from modeldeploy.registry.mlflow_client import MlflowRegistry

    if reason is not None:
        log.info("registry %s: using the MLflow client (%s)", clean, reason)
    return MlflowRegistry(uri)
