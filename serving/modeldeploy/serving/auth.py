"""Who may post labels and who may steer traffic: bearer tokens from files, and rate limits.

Why it exists: the live-accuracy gate promotes or rejects a model on the labels it is fed,
and the router's weights decide who is served by the candidate. An anonymous client that
can post labels, or move a weight, decides a rollout. So, when authentication is on:

- ``POST /v1/feedback`` (router and predictor) needs ``Authorization: Bearer <label token>``;
- the router's control endpoints (``PUT /router/weights`` ...) need the *control* token;
- request ids are issued (signed) by the platform, with a key derived from the control
  token, which applications never hold (see :class:`~modeldeploy.serving.contract.ids.IdIssuer`).

Files, not flags or environment variables, hold the secrets (a Kubernetes Secret mounted
as files; in local mode files of mode 0600 in the state directory). A label token file
may list several tokens, one per line (one per labelling application; ``#`` comments and
blank lines are ignored), so one can be revoked without the others. Tokens are compared
with :func:`hmac.compare_digest` against every listed token, so timing reveals neither
the token nor which one matched. Refusals are typed (:class:`Denied`): 401 without a
credential, 403 with a wrong one, 429 over the credential's rate.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LABEL_TOKEN_FILE = "label-token"
CONTROL_TOKEN_FILE = "control-token"
"""File names inside an auth directory (local mode's ``<state>/auth``; the chart's Secret keys)."""
DEFAULT_LABEL_RATE_PER_S = 200.0
DEFAULT_LABEL_BURST = 400.0
MIN_TOKEN_CHARS = 16


class AuthConfigError(ValueError):
    """A token file that cannot be used (missing, empty, too short); the message says which."""


@dataclass(frozen=True)
class Denied:
    """A refused request: its HTTP status, the ``reason`` label it is counted under, a message."""

    status: int
    reason: str
    message: str

    def headers(self) -> dict[str, str]:
        if self.status == 401:
            return {"WWW-Authenticate": 'Bearer realm="modeldeploy"'}
        return {}


def read_tokens(path: str | os.PathLike[str]) -> list[bytes]:
    """The tokens in a token file (one per line); raises :class:`AuthConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"cannot read token file {path}: {exc}") from exc
    tokens = [
        line.strip().encode()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not tokens:
        raise AuthConfigError(f"token file {path} holds no token")
    short = [t for t in tokens if len(t) < MIN_TOKEN_CHARS]
    if short:
        raise AuthConfigError(f"token file {path}: tokens must have {MIN_TOKEN_CHARS}+ characters")
    return tokens


def write_token_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` with one fresh token, mode 0600 (kept as it is when it exists).

    Local mode calls this for the label and control token files of its state directory.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(target, stat.S_IRUSR | stat.S_IWUSR)
        return target
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return target


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def fingerprint(token: bytes) -> str:
    """A short, non-secret name of a token (the rate-limit key; safe to log)."""
    return hashlib.sha256(b"modeldeploy token fingerprint\0" + token).hexdigest()[:12]


class TokenSet:
    """The tokens that grant one permission (``labels`` or ``control``)."""

    def __init__(self, tokens: Sequence[bytes], purpose: str) -> None:
        if not tokens:
            raise AuthConfigError(f"no {purpose} token")
        self._tokens = tuple(tokens)
        self.purpose = purpose

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], purpose: str) -> TokenSet:
        return cls(read_tokens(path), purpose)

    @property
    def first(self) -> bytes:
        """The first token (the one a platform component sends, and the id key's source)."""
        return self._tokens[0]

    def check(self, authorization: str | None) -> Denied | str:
        """The matching token's fingerprint, or why the request is refused."""
        presented = bearer(authorization)
        if presented is None:
            return Denied(
                401,
                "unauthenticated",
                f"{self.purpose} need a credential: send 'Authorization: Bearer <token>'",
            )
        given = presented.encode()
        matched: bytes | None = None
        for token in self._tokens:  # every token is compared: timing says nothing
            if hmac.compare_digest(given, token):
                matched = token
        if matched is None:
            return Denied(403, "forbidden", f"the credential is not valid for {self.purpose}")
        return fingerprint(matched)


class RateLimiter:
    """Token buckets by key (credential fingerprint or peer): ``rate_per_s``, ``burst`` deep.

    At most ``max_keys`` buckets are kept (least recently used out), so a flood of keys
    costs bounded memory; a key that was dropped starts again with a full bucket.
    """

    def __init__(
        self,
        rate_per_s: float = DEFAULT_LABEL_RATE_PER_S,
        burst: float = DEFAULT_LABEL_BURST,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_per_s > 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_s must be > 0, burst >= 1 and max_keys >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        now = self._clock()
        level, last = self._buckets.pop(key, (self.burst, now))
        level = min(self.burst, level + (now - last) * self.rate_per_s)
        allowed = level >= 1.0
        self._buckets[key] = (level - 1.0 if allowed else level, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed


@dataclass
class Auth:
    """Everything a router or predictor needs to authenticate: the two token sets and a limiter."""

    labels: TokenSet
    control: TokenSet
    limiter: RateLimiter

    @classmethod
    def from_files(
        cls,
        label_token_file: str | os.PathLike[str],
        control_token_file: str | os.PathLike[str],
        rate_per_s: float = DEFAULT_LABEL_RATE_PER_S,
        burst: float = DEFAULT_LABEL_BURST,
    ) -> Auth:
        labels = TokenSet.from_file(label_token_file, "labels")
        control = TokenSet.from_file(control_token_file, "control requests")
        if set(labels._tokens) & set(control._tokens):
            raise AuthConfigError("a label token must not also be a control token")
        return cls(labels, control, RateLimiter(rate_per_s, burst))

    @property
    def id_key(self) -> bytes:
        """The request-id signing key's source: the control token, which apps never hold."""
        return self.control.first

    def control_header(self) -> dict[str, str]:
        """The header a platform component sends to another's authenticated endpoint."""
        return {"Authorization": "Bearer " + self.control.first.decode()}

    def admit_label(self, headers: Mapping[str, str]) -> Denied | None:
        """None when a label post may go on: a label (or control) credential, within its rate.

        The control token is accepted too: the router forwards labels to its predictors
        with it, and the client's own token never leaves the router.
        """
        authorization = headers.get("authorization") or headers.get("Authorization")
        who = self.labels.check(authorization)
        if isinstance(who, Denied):
            if isinstance(self.control.check(authorization), str):
                return None  # a platform component: not rate limited
            return who
        if not self.limiter.allow(who):
            return Denied(
                429,
                "rate_limited",
                f"over {self.limiter.rate_per_s:g} labels/s for this credential; retry later",
            )
        return None

    def admit_control(self, headers: Mapping[str, str]) -> Denied | None:
        """None when a control request carries the control credential."""
        authorization = headers.get("authorization") or headers.get("Authorization")
        who = self.control.check(authorization)
        return who if isinstance(who, Denied) else None
