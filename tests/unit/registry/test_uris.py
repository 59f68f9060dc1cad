"""Registry URIs lose their credentials before they are logged, stored or passed on."""

from __future__ import annotations

import pytest

from modeldeploy.registry.base import RegistryUnavailable
from modeldeploy.registry.uris import (
    PASSWORD_ENV,
    USERNAME_ENV,
    Credentials,
    credentials_from_env,
    redact_text,
    redact_uri,
    split_credentials,
)


def test_split_takes_user_and_password_out():
    clean, creds = split_credentials("https://alice:s3cret@mlflow.example:5000/base?x=1")
    assert clean == "https://mlflow.example:5000/base?x=1"
    assert creds == Credentials("alice", "s3cret")


def test_percent_escapes_in_credentials_are_decoded():
    clean, creds = split_credentials("http://bob:p%40ss%3Aword@127.0.0.1:5000")
    assert clean == "http://127.0.0.1:5000"
    assert creds == Credentials("bob", "p@ss:word")


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:5000", "sqlite:///tmp/mlflow.db", "databricks", "file:///x/y"]
)
def test_uris_without_credentials_are_unchanged(uri):
    assert split_credentials(uri) == (uri, None)
    assert redact_uri(uri) == uri


def test_redact_uri_of_nothing_is_empty():
    assert redact_uri(None) == "" and redact_uri("") == ""


def test_redact_text_cleans_every_uri_in_a_message():
    text = (
        "API request to http://u:pw@host:5000/api/2.0/x failed; "
        "also https://other:secret@h2/p and s3://bucket/key"
    )
    out = redact_text(text)
    assert "pw" not in out and "secret" not in out
    assert "http://host:5000/api/2.0/x" in out and "https://h2/p" in out
    assert "s3://bucket/key" in out


def test_credentials_travel_as_the_variables_mlflow_reads():
    creds = Credentials("alice", "s3cret")
    assert creds.environ() == {USERNAME_ENV: "alice", PASSWORD_ENV: "s3cret"}
    assert credentials_from_env(creds.environ()) == creds
    assert credentials_from_env({}) is None


def test_the_mlflow_client_keeps_only_the_clean_uri(monkeypatch: pytest.MonkeyPatch):
    from modeldeploy.registry.mlflow_client import MlflowRegistry

    monkeypatch.delenv(USERNAME_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    client = MlflowRegistry("http://alice:s3cret@127.0.0.1:9", health_timeout=0.5)
    assert client.uri == "http://127.0.0.1:9"
    assert "s3cret" not in repr(client)
    import os

    assert os.environ[USERNAME_ENV] == "alice" and os.environ[PASSWORD_ENV] == "s3cret"
    assert client.is_online() is False  # port 9: nothing answers, and no crash


def test_fetch_errors_never_show_the_password(tmp_path, monkeypatch: pytest.MonkeyPatch):
    from modeldeploy.registry.fetch import fetch

    monkeypatch.delenv(USERNAME_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(RegistryUnavailable) as caught:
        fetch("http://alice:s3cret@127.0.0.1:9", "m", "1", tmp_path)
    assert "s3cret" not in str(caught.value) and "alice" not in str(caught.value)


def test_the_health_check_authenticates_with_the_uri_credentials(
    monkeypatch: pytest.MonkeyPatch,
):
    """A registry behind basic auth answers /health only with the credentials: the URI's
    user:pass@ must reach it as an Authorization header (urllib drops it from the URL)."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from modeldeploy.registry.mlflow_client import MlflowRegistry

    wanted = "Basic " + base64.b64encode(b"alice:s3cret").decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/health" and self.headers.get("Authorization") == wanted
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.delenv(USERNAME_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    try:
        assert MlflowRegistry(f"http://alice:s3cret@127.0.0.1:{port}").is_online() is True
        monkeypatch.setenv(PASSWORD_ENV, "wrong")
        assert MlflowRegistry(f"http://127.0.0.1:{port}").is_online() is False
    finally:
        server.shutdown()
