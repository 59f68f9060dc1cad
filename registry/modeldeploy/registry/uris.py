"""Registry URIs without their credentials: what may be logged, stored or passed on.

An MLflow URI such as ``https://alice:s3cret@mlflow.example/`` carries a password. It
must never reach a log line, an error message, a resource status, ``state.json`` or a
predictor's command line (all of which other people and processes can read). The
credentials travel as environment instead: MLflow itself reads
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` on every request, and a
child process inherits them. Pure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"

# scheme://userinfo@ anywhere in a text (an error message that quotes a URI).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def environ(self) -> dict[str, str]:
        """The variables MLflow reads, for a child process or this one."""
        return {USERNAME_ENV: self.username, PASSWORD_ENV: self.password}


def split_credentials(uri: str) -> tuple[str, Credentials | None]:
    """``uri`` without its ``user:pass@`` part, and the credentials it carried (if any).

    Percent-escapes in the user name and password are decoded (``p%40ss`` is ``p@ss``),
    as a browser or ``requests`` would.
    """
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, Credentials(unquote(user), unquote(password))


def redact_uri(uri: str | None) -> str:
    """``uri`` safe to log, store or pass on: any ``user:pass@`` removed ("" for None)."""
    if not uri:
        return ""
    return split_credentials(uri)[0]


def redact_text(text: str) -> str:
    """``text`` (an error message, a log line) with the userinfo of every URI in it removed."""
    return _USERINFO.sub(r"\g<scheme>", text)


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials MLflow would use from the environment, if a user name is set."""
    env = os.environ if environ is None else environ
    user = env.get(USERNAME_ENV)
    if not user:
        return None
    return Credentials(user, env.get(PASSWORD_ENV, ""))
