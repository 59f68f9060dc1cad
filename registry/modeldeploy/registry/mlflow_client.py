"""The one module that imports mlflow: :class:`MlflowRegistry` implements RegistryClient.

Every call goes to the server given explicitly (tracking and registry URI), never to
mlflow's process-global state or a ./mlruns folder. mlflow's own exceptions are mapped
to the typed errors in ``base`` so nothing else needs to know mlflow's error codes.

A version's files are logged as the artifacts of a small "publish" run and the version
is created from that artifact location. This needs no flavor, no pip requirements and
no model loading, and the registry alone says where the files are
(``get_model_version_download_uri``), which is all fetch needs.

mlflow retries a refused connection for minutes (MLFLOW_HTTP_REQUEST_MAX_RETRIES);
callers that must stay responsive (the watcher) ask :meth:`is_online` first, which is
one short HTTP GET of ``/health``.

Credentials never stay in the URI: a ``user:pass@`` part is taken out (``uris``), put
into ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` of this process, which MLflow reads on
every request and any predictor this process starts inherits, and sent as basic auth
by the health check. ``self.uri``, ``repr`` and every error show the clean URI.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import mlflow.artifacts
import requests
from mlflow import MlflowClient
from mlflow.entities.webhook import WebhookEvent
from mlflow.exceptions import MlflowException, RestException

from modeldeploy.registry.base import (
    ModelVersionInfo,
    NotFound,
    RegisteredModelInfo,
    RegistryError,
    RegistryUnavailable,
    WebhookInfo,
)
from modeldeploy.registry.uris import credentials_from_env, redact_text, split_credentials

DEFAULT_EXPERIMENT = "modeldeploy-publish"
ARTIFACT_PATH = "checkpoint"


@contextlib.contextmanager
def _mapped_errors(what: str) -> Iterator[None]:
    """Translate mlflow/requests failures into the registry's typed errors."""
    try:
        yield
    except RestException as exc:
        code = exc.error_code
        status = exc.get_http_status_code()
        if code == "RESOURCE_DOES_NOT_EXIST" or status == 404:
            raise NotFound(redact_text(f"{what}: {exc.message}")) from None
        if status >= 500 or code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"):
            raise RegistryUnavailable(redact_text(f"{what}: {exc.message}")) from None
        raise RegistryError(redact_text(f"{what}: {exc.message}")) from None
    except MlflowException as exc:
        # Transport failures come back as a plain MlflowException "API request to ... failed".
        if str(exc.message).startswith("API request to"):
            raise RegistryUnavailable(
                redact_text(f"{what}: registry unreachable ({exc.message})")
            ) from None
        raise RegistryError(redact_text(f"{what}: {exc.message}")) from None
    except requests.exceptions.RequestException as exc:
        raise RegistryUnavailable(redact_text(f"{what}: registry unreachable ({exc})")) from None


def _version(mv) -> ModelVersionInfo:  # mv: mlflow ModelVersion
    return ModelVersionInfo(
        name=mv.name,
        version=str(mv.version),
        tags=dict(mv.tags or {}),
        aliases=tuple(mv.aliases or ()),
        source=mv.source or "",
        run_id=mv.run_id or None,
        created_ms=int(mv.creation_timestamp or 0),
        description=mv.description or "",
    )


def _model(rm) -> RegisteredModelInfo:  # rm: mlflow RegisteredModel
    aliases = rm.aliases or {}
    if isinstance(aliases, list):  # some stores return alias entities
        aliases = {a.alias: a.version for a in aliases}
    return RegisteredModelInfo(
        name=rm.name,
        aliases={str(k): str(v) for k, v in aliases.items()},
        updated_ms=int(rm.last_updated_timestamp or 0),
        description=rm.description or "",
    )


def _events(events: Sequence[str]) -> list[Any]:  # list[WebhookEvent]; mlflow types it invariantly
    """Our event names ("model_version.created") as mlflow's typed events."""
    return [WebhookEvent.from_str(cast(Any, e)) for e in events]


def _webhook(wh) -> WebhookInfo:
    return WebhookInfo(
        webhook_id=str(wh.webhook_id),
        name=wh.name,
        url=wh.url,
        events=tuple(str(e) for e in wh.events),
        active=wh.status.is_active(),
    )


class MlflowRegistry:
    """RegistryClient over a real MLflow tracking server."""

    def __init__(
        self,
        uri: str,
        *,
        experiment: str = DEFAULT_EXPERIMENT,
        health_timeout: float = 2.0,
    ) -> None:
        if not uri:
            raise RegistryError("no registry URI given")
        clean, credentials = split_credentials(uri)
        if credentials is not None:
            os.environ.update(credentials.environ())
        self.uri = clean.rstrip("/")
        self.experiment = experiment
        self.health_timeout = health_timeout
        self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def __repr__(self) -> str:
        return f"MlflowRegistry({self.uri!r})"

    # -- health ------------------------------------------------------------------------
    def is_online(self) -> bool:
        if not self.uri.startswith(("http://", "https://")):
            return True  # a local store (sqlite/file) is as available as the disk
        request = urllib.request.Request(f"{self.uri}/health")
        credentials = credentials_from_env()
        if credentials is not None:
            token = f"{credentials.username}:{credentials.password}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
        try:
            with urllib.request.urlopen(request, timeout=self.health_timeout) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False

    # -- models and versions -----------------------------------------------------------
    def list_models(self) -> list[RegisteredModelInfo]:
        out: list[RegisteredModelInfo] = []
        token: str | None = None
        with _mapped_errors("list registered models"):
            while True:
                page = self._client.search_registered_models(max_results=200, page_token=token)
                out.extend(_model(rm) for rm in page)
                token = page.token
                if not token:
                    break
        return sorted(out, key=lambda m: m.name)

    def get_model(self, name: str) -> RegisteredModelInfo:
        with _mapped_errors(f"model {name!r}"):
            return _model(self._client.get_registered_model(name))

    def search_versions(
        self, name: str, *, max_results: int, page_token: str | None = None
    ) -> tuple[list[ModelVersionInfo], str | None]:
        if "'" in name:
            raise RegistryError(f"model name {name!r}: quotes are not supported")
        with _mapped_errors(f"versions of {name!r}"):
            page = self._client.search_model_versions(
                f"name = '{name}'",
                max_results=max_results,
                order_by=["version_number DESC"],
                page_token=page_token,
            )
            return [_version(mv) for mv in page], (page.token or None)

    def get_version(self, name: str, version: str) -> ModelVersionInfo:
        with _mapped_errors(f"{name!r} version {version}"):
            return _version(self._client.get_model_version(name, str(version)))

    def create_version(
        self,
        name: str,
        local_dir: Path,
        *,
        tags: Mapping[str, str],
        description: str = "",
    ) -> ModelVersionInfo:
        with _mapped_errors(f"publish {name!r}"):
            experiment = self._client.get_experiment_by_name(self.experiment)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self._client.create_experiment(self.experiment)
            )
            run = self._client.create_run(
                experiment_id, run_name=f"publish-{name}", tags={"modeldeploy.model": name}
            )
            run_id = run.info.run_id
            try:
                self._client.log_artifacts(run_id, str(local_dir), ARTIFACT_PATH)
            except BaseException:
                self._client.set_terminated(run_id, status="FAILED")
                raise
            self._client.set_terminated(run_id)
            try:
                self._client.get_registered_model(name)
            except RestException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                with contextlib.suppress(RestException):  # created meanwhile by someone else
                    self._client.create_registered_model(name)
            source = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}"
            mv = self._client.create_model_version(
                name, source, run_id=run_id, tags=dict(tags), description=description or None
            )
            return _version(mv)

    def download_version(self, name: str, version: str, dst_dir: Path) -> Path:
        with _mapped_errors(f"download {name!r} version {version}"):
            uri = self._client.get_model_version_download_uri(name, str(version))
            dst_dir.mkdir(parents=True, exist_ok=True)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri,
                dst_path=str(dst_dir),
                tracking_uri=self.uri,
                registry_uri=self.uri,
            )
        path = Path(local)
        if path.is_file():  # a single-file artifact: keep the directory shape
            target = dst_dir / ARTIFACT_PATH
            target.mkdir(exist_ok=True)
            shutil.move(str(path), target / path.name)
            path = target
        return path

    # -- aliases and tags --------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: str) -> None:
        with _mapped_errors(f"set alias {alias!r} on {name!r} version {version}"):
            self._client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        with _mapped_errors(f"remove alias {alias!r} from {name!r}"):
            self._client.delete_registered_model_alias(name, alias)

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        with _mapped_errors(f"tag {name!r} version {version}"):
            self._client.set_model_version_tag(name, str(version), key, value)

    # -- extra artifacts of a version (registry/triton.py) --------------------------------
    def log_version_artifacts(
        self, name: str, version: str, local_dir: Path, artifact_path: str
    ) -> str:
        """Add ``local_dir`` to the run ``version`` was published from; return its URI."""
        with _mapped_errors(f"artifacts of {name!r} version {version}"):
            run_id = self._client.get_model_version(name, str(version)).run_id
            if not run_id:
                raise RegistryError(f"{name!r} version {version} has no run to attach files to")
            self._client.log_artifacts(run_id, str(local_dir), artifact_path)
            return f"{self._client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"

    def download_artifacts(self, uri: str, dst_dir: Path) -> Path:
        """Download the artifact directory at ``uri`` into ``dst_dir``; return its path."""
        dst_dir.mkdir(parents=True, exist_ok=True)
        with _mapped_errors(f"download {uri}"):
            return Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=str(dst_dir), tracking_uri=self.uri
                )
            )

    # -- webhooks ----------------------------------------------------------------------
    def list_webhooks(self) -> list[WebhookInfo]:
        out: list[WebhookInfo] = []
        token: str | None = None
        with _mapped_errors("list webhooks"):
            while True:
                page = self._client.list_webhooks(max_results=100, page_token=token)
                out.extend(_webhook(wh) for wh in page)
                token = page.token
                if not token:
                    break
        return out

    def create_webhook(
        self, name: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo:
        with _mapped_errors(f"create webhook {name!r}"):
            return _webhook(
                self._client.create_webhook(name, url, events=_events(events), secret=secret)
            )

    def update_webhook(
        self, webhook_id: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo:
        with _mapped_errors(f"update webhook {webhook_id}"):
            return _webhook(
                self._client.update_webhook(
                    webhook_id,
                    url=url,
                    events=_events(events),
                    secret=secret,
                    status="ACTIVE",
                )
            )
