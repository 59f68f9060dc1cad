"""HTTP to an MLflow server the way MLflow's own client does it, without importing MLflow.

Importing the MLflow client costs the operator about 100 MB of memory (measured: the
RSS of a fresh interpreter with the operator's modules, before and after), and the
operator only reads aliases and versions and moves aliases and tags. So its registry
calls go through this module and :mod:`rest_client` instead, which read the same
environment variables with the same meaning as MLflow 3.17's client, so an operator
configured for MLflow keeps working unchanged:

- retries: ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (7), ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``
  (2), ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`` (1.0), on refused connections, timeouts and
  the statuses 408, 429, 500, 502, 503, 504, for every method, honouring ``Retry-After``
  (``MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER``): ``mlflow/utils/request_utils.py``
  (``_TRANSIENT_FAILURE_RESPONSE_CODES``, ``_get_request_session``);
- ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (120 s) per request, ``MLFLOW_ALLOW_HTTP_REDIRECTS``,
  ``MLFLOW_HTTP_POOL_CONNECTIONS`` / ``MLFLOW_HTTP_POOL_MAXSIZE`` (10);
- auth: basic auth when ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD`` are
  both set (each falls back to ``~/.mlflow/credentials``), else a bearer
  ``MLFLOW_TRACKING_TOKEN``: ``mlflow/utils/rest_utils.py`` ``http_request`` and
  ``mlflow/utils/credentials.py`` ``get_default_host_creds``;
- TLS: ``MLFLOW_TRACKING_INSECURE_TLS`` (no verification), ``MLFLOW_TRACKING_SERVER_CERT_PATH``
  (a CA bundle; both at once is an error, as in ``MlflowHostCreds``),
  ``MLFLOW_TRACKING_CLIENT_CERT_PATH`` (a client certificate);
- ``MLFLOW_WORKSPACE``: the ``X-MLFLOW-WORKSPACE`` header (``mlflow/utils/workspace_utils.py``).

Auth that needs MLflow's plugins (``MLFLOW_TRACKING_AUTH``, ``MLFLOW_TRACKING_AWS_SIGV4``)
is not reimplemented: :func:`unsupported` names it and the factory
(:func:`modeldeploy.registry.rest_client.operator_registry`) uses the MLflow client then.

Errors become the registry's typed errors in one place (:func:`raise_for_reply`): an
unreachable server, a timeout, retries spent or a 5xx/429 are ``RegistryUnavailable``;
``RESOURCE_DOES_NOT_EXIST`` or a 404 is ``NotFound``; anything else ``RegistryError``.
Every message has credentials stripped (``uris.redact_text``).
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from modeldeploy.registry.base import NotFound, RegistryError, RegistryUnavailable
from modeldeploy.registry.uris import PASSWORD_ENV, USERNAME_ENV, redact_text

# MLflow's REST API prefix (``mlflow/utils/rest_utils.py`` ``_REST_API_PATH_PREFIX``).
API = "/api/2.0/mlflow"
TRANSIENT_STATUSES = frozenset((408, 429, 500, 502, 503, 504))
# Error codes that say "later" rather than "never" (``mlflow/exceptions.py``).
TRANSIENT_CODES = frozenset(("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"))
WORKSPACE_HEADER = "X-MLFLOW-WORKSPACE"
# What MLflow's client needs plugins for; the factory hands these to the MLflow client.
PLUGIN_AUTH_ENV = ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """MLflow's boolean variables: "true"/"1" and "false"/"0", any case."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise RegistryError(f"{name}={raw!r}: expected true, false, 1 or 0")
    return value in ("true", "1")


def _number(env: Mapping[str, str], name: str, default: float, kind: type = int) -> Any:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise RegistryError(f"{name}={raw!r}: expected a number") from None


def _credentials_file(home: Path | None = None) -> tuple[str | None, str | None]:
    """``~/.mlflow/credentials`` ``[mlflow]`` section, as MLflow reads it."""
    path = (home or Path.home()) / ".mlflow" / "credentials"
    if not path.is_file():
        return None, None
    config = configparser.ConfigParser()
    config.read(path)
    if "mlflow" not in config:
        return None, None
    section = config["mlflow"]
    return section.get(USERNAME_ENV.lower()), section.get(PASSWORD_ENV.lower())


def unsupported(env: Mapping[str, str] | None = None) -> str | None:
    """Why this client cannot talk like MLflow's with this environment (None: it can)."""
    env = os.environ if env is None else env
    for name in PLUGIN_AUTH_ENV:
        value = env.get(name, "")
        if value and value.strip().lower() not in ("false", "0"):
            return f"{name} is set (an MLflow auth plugin)"
    return None


@dataclass(frozen=True)
class HttpConfig:
    """One request's settings, read from the environment (MLflow reads it per request)."""

    max_retries: int = 7
    backoff_factor: float = 2
    backoff_jitter: float = 1.0
    timeout: float = 120
    respect_retry_after: bool = True
    allow_redirects: bool = True
    pool_connections: int = 10
    pool_maxsize: int = 10
    authorization: str | None = None
    verify: bool | str = True
    client_cert: str | None = None
    workspace: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, home: Path | None = None) -> HttpConfig:
        env = os.environ if env is None else env
        file_user, file_password = _credentials_file(home)
        user = env.get(USERNAME_ENV) or file_user
        password = env.get(PASSWORD_ENV) or file_password
        authorization = None
        if user and password:
            token = base64.standard_b64encode(f"{user}:{password}".encode()).decode()
            authorization = f"Basic {token}"
        elif env.get("MLFLOW_TRACKING_TOKEN"):
            authorization = f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"
        insecure = _flag(env, "MLFLOW_TRACKING_INSECURE_TLS", False)
        ca_bundle = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
        if insecure and ca_bundle:
            raise RegistryError(
                "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both "
                "set: set only one of them"
            )
        retries = _number(env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES", 7)
        backoff = _number(env, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", 2)
        if retries < 0 or backoff < 0:
            raise RegistryError("MLFLOW_HTTP_REQUEST_MAX_RETRIES and _BACKOFF_FACTOR must be >= 0")
        return cls(
            max_retries=retries,
            backoff_factor=backoff,
            backoff_jitter=_number(env, "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", 1.0, float),
            timeout=_number(env, "MLFLOW_HTTP_REQUEST_TIMEOUT", 120),
            respect_retry_after=_flag(env, "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER", True),
            allow_redirects=env.get("MLFLOW_ALLOW_HTTP_REDIRECTS", "true").lower() in ("true", "1"),
            pool_connections=_number(env, "MLFLOW_HTTP_POOL_CONNECTIONS", 10),
            pool_maxsize=_number(env, "MLFLOW_HTTP_POOL_MAXSIZE", 10),
            authorization=authorization,
            verify=ca_bundle if ca_bundle else not insecure,
            client_cert=env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None,
            workspace=(env.get("MLFLOW_WORKSPACE") or "").strip() or None,
        )

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.authorization:
            out["Authorization"] = self.authorization
        if self.workspace:
            out[WORKSPACE_HEADER] = self.workspace
        return out

    def retry(self) -> Retry:
        """urllib3's retry policy with MLflow's arguments (every method is retried)."""
        n = self.max_retries
        return Retry(
            total=n,
            connect=n,
            read=n,
            redirect=n,
            status=n,
            status_forcelist=TRANSIENT_STATUSES,
            backoff_factor=self.backoff_factor,
            backoff_jitter=self.backoff_jitter,
            raise_on_status=True,
            respect_retry_after_header=self.respect_retry_after,
            allowed_methods=None,
        )


class Transport:
    """A ``requests`` session per retry policy, shared by threads, like MLflow's cache."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._sessions: dict[tuple[Any, ...], requests.Session] = {}
        self._lock = threading.Lock()

    def session(self, config: HttpConfig) -> requests.Session:
        key = (
            config.max_retries,
            config.backoff_factor,
            config.backoff_jitter,
            config.respect_retry_after,
            config.pool_connections,
            config.pool_maxsize,
        )
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                adapter = HTTPAdapter(
                    pool_connections=config.pool_connections,
                    pool_maxsize=config.pool_maxsize,
                    max_retries=config.retry(),
                )
                session = requests.Session()
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._sessions[key] = session
            return session

    def call(
        self,
        method: str,
        endpoint: str,
        what: str,
        body: Mapping[str, Any] | None = None,
        config: HttpConfig | None = None,
    ) -> dict[str, Any]:
        """One MLflow REST call; its JSON reply, or a typed error naming ``what``.

        As MLflow's ``call_endpoint``: a GET sends ``body`` as query parameters (a list
        becomes a repeated parameter), any other method as a JSON body.
        """
        config = config or HttpConfig.from_env()
        kwargs: dict[str, Any] = {
            "headers": config.headers(),
            "timeout": config.timeout,
            "verify": config.verify,
            "allow_redirects": config.allow_redirects,
        }
        if config.client_cert:
            kwargs["cert"] = config.client_cert
        if body is not None:
            kwargs["params" if method == "GET" else "json"] = dict(body)
        url = f"{self.base_url}{endpoint}"
        try:
            reply = self.session(config).request(method, url, **kwargs)
        except requests.exceptions.RequestException as exc:
            # Refused, reset, timed out, or the retries spent on 5xx/429 (RetryError).
            raise RegistryUnavailable(
                redact_text(f"{what}: registry unreachable ({exc})")
            ) from None
        return raise_for_reply(reply.status_code, reply.text, what)

    def ok(self, path: str, timeout: float, config: HttpConfig | None = None) -> bool:
        """One GET of ``path`` with no retries: 2xx or not (never raises)."""
        config = config or HttpConfig.from_env()
        kwargs: dict[str, Any] = {"headers": config.headers(), "verify": config.verify}
        if config.client_cert:
            kwargs["cert"] = config.client_cert
        try:
            reply = requests.get(f"{self.base_url}{path}", timeout=timeout, **kwargs)
        except requests.exceptions.RequestException:
            return False
        return 200 <= reply.status_code < 300

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()


def raise_for_reply(status: int, text: str, what: str) -> dict[str, Any]:
    """The reply's JSON object when ``status`` is 200, else the registry's typed error.

    MLflow answers an error with ``{"error_code": ..., "message": ...}`` (``RestException``);
    a proxy in front of it may answer with anything.
    """
    try:
        payload = json.loads(text) if text.strip() else {}
    except ValueError:
        payload = None
    if status == 200:
        if not isinstance(payload, dict):
            raise RegistryError(
                redact_text(f"{what}: the reply is not a JSON object: {text[:200]!r}")
            )
        return payload
    code = str(payload.get("error_code", "")) if isinstance(payload, dict) else ""
    detail = payload.get("message") if isinstance(payload, dict) else None
    message = redact_text(f"{what}: {detail or text[:200] or 'no detail'} (HTTP {status})")
    if code == "RESOURCE_DOES_NOT_EXIST" or status == 404:
        raise NotFound(message)
    if status >= 500 or status in TRANSIENT_STATUSES or code in TRANSIENT_CODES:
        raise RegistryUnavailable(message)
    raise RegistryError(message)
