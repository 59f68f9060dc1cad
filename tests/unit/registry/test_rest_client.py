"""The REST client against a scripted HTTP server: what it sends, and how failures map.

The happy paths against a real ``mlflow server`` are the registry contract
(``tests/contract/test_registry_contract.py``, param ``rest``); here are the things a
real server does not do on demand: answer 503 or 429, hang, refuse, send non-JSON, and
check the credentials and TLS settings the client reads from MLflow's variables.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from modeldeploy.registry.base import NotFound, RegistryError, RegistryUnavailable
from modeldeploy.registry.rest_client import RestRegistry, operator_registry
from modeldeploy.registry.rest_http import HttpConfig, unsupported
from tests.support.processes import free_port

Reply = tuple[int, Any]  # status, JSON body (a str is sent as it is)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class Script:
    """What the server answers (by ``METHOD path``), and every request it saw."""

    replies: dict[str, Callable[[], Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            script.seen.append(
                Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    json.loads(raw) if raw else None,
                    {k.lower(): v for k, v in self.headers.items()},
                )
            )
            if script.delay:
                time.sleep(script.delay)
            make = script.replies.get(f"{self.command} {parts.path}")
            status, body = make() if make else (404, {"error_code": "ENDPOINT_NOT_FOUND"})
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MLflow variables from the machine; no ~/.mlflow/credentials; quick retries."""
    import os

    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, "")  # so a client that sets them has them removed after
    for key in list(os.environ):
        if key.startswith("MLFLOW_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


MODEL = {
    "name": "m",
    "last_updated_timestamp": "1700000000000",
    "aliases": [{"alias": "champion", "version": "2"}, {"alias": "challenger", "version": "3"}],
}
VERSION = {
    "name": "m",
    "version": "3",
    "creation_timestamp": 1700000000001,
    "source": "models:/m-abc",
    "run_id": "r1",
    "tags": [{"key": "modeldeploy.manifest_sha256", "value": "d1"}],
    "aliases": ["challenger"],
}


# -- what is sent, what is read --------------------------------------------------------


def test_reads_mlflows_json_into_the_platforms_types(server) -> None:
    url, script = server
    script.replies["GET /api/2.0/mlflow/registered-models/get"] = lambda: (
        200,
        {"registered_model": MODEL},
    )
    script.replies["GET /api/2.0/mlflow/model-versions/get"] = lambda: (
        200,
        {"model_version": VERSION},
    )
    client = RestRegistry(url)
    model = client.get_model("m")
    assert model.aliases == {"champion": "2", "challenger": "3"}
    assert model.updated_ms == 1700000000000  # int64 as a JSON string
    version = client.get_version("m", "3")
    assert (version.version, version.source, version.run_id) == ("3", "models:/m-abc", "r1")
    assert version.tags == {"modeldeploy.manifest_sha256": "d1"}
    assert version.aliases == ("challenger",) and version.created_ms == 1700000000001
    assert script.seen[1].query == {"name": ["m"], "version": ["3"]}


def test_search_sends_mlflows_query_and_pages(server) -> None:
    url, script = server
    pages = iter([(200, {"model_versions": [VERSION], "next_page_token": "t2"}), (200, {})])
    script.replies["GET /api/2.0/mlflow/model-versions/search"] = lambda: next(pages)
    client = RestRegistry(url)
    found, token = client.search_versions("m", max_results=1)
    assert [v.version for v in found] == ["3"] and token == "t2"
    assert client.search_versions("m", max_results=1, page_token=token) == ([], None)
    first, second = script.seen
    assert first.query == {
        "filter": ["name = 'm'"],
        "max_results": ["1"],
        "order_by": ["version_number DESC"],
    }
    assert second.query["page_token"] == ["t2"]
    with pytest.raises(RegistryError, match="quotes"):
        client.search_versions("it's", max_results=1)


def test_the_listing_follows_every_page(server) -> None:
    url, script = server
    pages = iter(
        [
            (200, {"registered_models": [{"name": "b"}], "next_page_token": "p2"}),
            (200, {"registered_models": [MODEL]}),
        ]
    )
    script.replies["GET /api/2.0/mlflow/registered-models/search"] = lambda: next(pages)
    listed = RestRegistry(url).list_models()
    assert [m.name for m in listed] == ["b", "m"] and listed[1].aliases["champion"] == "2"
    assert [s.query.get("page_token") for s in script.seen] == [None, ["p2"]]


def test_writes_are_mlflows_json_bodies(server) -> None:
    url, script = server
    for key in (
        "POST /api/2.0/mlflow/registered-models/alias",
        "DELETE /api/2.0/mlflow/registered-models/alias",
        "POST /api/2.0/mlflow/model-versions/set-tag",
    ):
        script.replies[key] = lambda: (200, {})
    client = RestRegistry(url)
    client.set_alias("m", "champion", "3")
    client.delete_alias("m", "challenger")
    client.set_version_tag("m", "3", "k", "v")
    assert [(s.method, s.body) for s in script.seen] == [
        ("POST", {"name": "m", "alias": "champion", "version": "3"}),
        ("DELETE", {"name": "m", "alias": "challenger"}),
        ("POST", {"name": "m", "version": "3", "key": "k", "value": "v"}),
    ]


# -- credentials -------------------------------------------------------------------------


def test_credentials_in_the_uri_become_basic_auth_and_never_show(server, monkeypatch) -> None:
    url, script = server
    script.replies["GET /api/2.0/mlflow/registered-models/get"] = lambda: (
        403,
        {"error_code": "PERMISSION_DENIED", "message": f"denied for {url}"},
    )
    authed = url.replace("http://", "http://alice:s3cret@")
    client = RestRegistry(authed)
    assert "s3cret" not in repr(client) and client.uri == url
    with pytest.raises(RegistryError) as err:
        client.get_model("m")
    assert not isinstance(err.value, RegistryUnavailable | NotFound)
    assert "s3cret" not in str(err.value)
    # base64("alice:s3cret")
    assert script.seen[0].headers["authorization"] == "Basic YWxpY2U6czNjcmV0"


def test_a_token_is_sent_as_bearer_when_there_is_no_password(server, monkeypatch) -> None:
    url, script = server
    script.replies["GET /health"] = lambda: (200, "OK")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    assert RestRegistry(url).is_online() is True
    assert script.seen[0].headers["authorization"] == "Bearer tok"
    assert script.seen[0].headers["x-mlflow-workspace"] == "team-a"


def test_settings_read_mlflows_variables() -> None:
    env = {
        "MLFLOW_TRACKING_USERNAME": "u",
        "MLFLOW_TRACKING_PASSWORD": "p",
        "MLFLOW_TRACKING_TOKEN": "ignored: basic auth wins, as in MLflow",
        "MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca.pem",
        "MLFLOW_TRACKING_CLIENT_CERT_PATH": "/client.pem",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    }
    config = HttpConfig.from_env(env, home=Path("/nonexistent"))
    assert config.authorization == "Basic dTpw"
    assert (config.verify, config.client_cert) == ("/ca.pem", "/client.pem")
    assert (config.max_retries, config.timeout) == (2, 10)
    defaults = HttpConfig.from_env({}, home=Path("/nonexistent"))
    assert (defaults.max_retries, defaults.timeout, defaults.verify) == (7, 120, True)
    assert defaults.authorization is None
    insecure = HttpConfig.from_env({"MLFLOW_TRACKING_INSECURE_TLS": "true"}, home=Path("/x"))
    assert insecure.verify is False
    with pytest.raises(RegistryError, match="only one"):
        HttpConfig.from_env(
            {"MLFLOW_TRACKING_INSECURE_TLS": "1", "MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca"},
            home=Path("/x"),
        )


def test_the_credentials_file_fills_in_what_the_environment_lacks(tmp_path: Path) -> None:
    (tmp_path / ".mlflow").mkdir()
    (tmp_path / ".mlflow" / "credentials").write_text(
        "[mlflow]\nmlflow_tracking_username = fileuser\nmlflow_tracking_password = filepass\n"
    )
    from_file = HttpConfig.from_env({}, home=tmp_path)
    assert from_file.authorization == "Basic ZmlsZXVzZXI6ZmlsZXBhc3M="
    env_wins = HttpConfig.from_env({"MLFLOW_TRACKING_USERNAME": "envuser"}, home=tmp_path)
    assert env_wins.authorization == "Basic ZW52dXNlcjpmaWxlcGFzcw=="


# -- failures ----------------------------------------------------------------------------


def test_missing_things_are_not_found(server) -> None:
    url, script = server
    script.replies["GET /api/2.0/mlflow/model-versions/get"] = lambda: (
        404,
        {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Model Version (m, 9) not found"},
    )
    with pytest.raises(NotFound, match="not found"):
        RestRegistry(url).get_version("m", "9")


def test_a_bad_request_is_an_error_not_an_outage(server) -> None:
    url, script = server
    script.replies["POST /api/2.0/mlflow/registered-models/alias"] = lambda: (
        400,
        {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad alias"},
    )
    with pytest.raises(RegistryError, match="bad alias") as err:
        RestRegistry(url).set_alias("m", "latest", "1")
    assert not isinstance(err.value, RegistryUnavailable)
    assert len(script.seen) == 1  # a 400 is not retried


@pytest.mark.parametrize("status", [503, 429])
def test_transient_statuses_are_retried_then_unavailable(server, status: int) -> None:
    url, script = server
    script.replies["GET /api/2.0/mlflow/registered-models/get"] = lambda: (
        status,
        {"error_code": "TEMPORARILY_UNAVAILABLE"},
    )
    with pytest.raises(RegistryUnavailable):
        RestRegistry(url).get_model("m")
    assert len(script.seen) == 3  # MLFLOW_HTTP_REQUEST_MAX_RETRIES=2: one try, two retries


def test_a_retry_that_succeeds_is_invisible(server) -> None:
    url, script = server
    replies = iter([(502, "bad gateway"), (200, {"registered_model": MODEL})])
    script.replies["GET /api/2.0/mlflow/registered-models/get"] = lambda: next(replies)
    assert RestRegistry(url).get_model("m").aliases["champion"] == "2"


def test_an_unreachable_server_is_unavailable_and_offline() -> None:
    client = RestRegistry(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        client.get_model("m")
    assert client.is_online() is False
    assert time.monotonic() - started < 10


def test_a_hung_server_times_out_as_unavailable(server, monkeypatch) -> None:
    url, script = server
    script.delay = 3.0
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable):
        RestRegistry(url).get_model("m")
    assert time.monotonic() - started < 2.9


def test_a_reply_that_is_not_json_is_an_error(server) -> None:
    url, script = server
    script.replies["GET /api/2.0/mlflow/registered-models/get"] = lambda: (
        200,
        "<html>login</html>",
    )
    with pytest.raises(RegistryError, match="not a JSON object"):
        RestRegistry(url).get_model("m")


# -- which client a long-running process gets ------------------------------------------


def test_the_operator_gets_the_rest_client_for_http(monkeypatch) -> None:
    assert isinstance(operator_registry("http://mlflow.example:5000"), RestRegistry)
    assert isinstance(operator_registry("https://u:p@mlflow.example"), RestRegistry)
    with pytest.raises(RegistryError, match="http"):
        RestRegistry("sqlite:///x.db")
    assert unsupported({}) is None
    assert unsupported({"MLFLOW_TRACKING_AWS_SIGV4": "false"}) is None
    assert "MLFLOW_TRACKING_AUTH" in (unsupported({"MLFLOW_TRACKING_AUTH": "custom"}) or "")
