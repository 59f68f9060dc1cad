"""Request ids, item ids and label values: what the predictor, the router and feedback accept.

A request id travels in the ``x-request-id`` header from the router to every arm, is the
key every arm stores its prediction under, and comes back in feedback. So it must be a
valid header value everywhere, and mean the same thing to every process: 1 to
``MAX_REQUEST_ID_CHARS`` visible ASCII characters (``!`` to ``~``, no spaces or
controls) after surrounding whitespace is stripped.

An *item* is one text of a request: its id is the request id for a single text, else
``<request id>/<index>``.

A label names a class either by index (an ``int``, or a string of ASCII digits) or by one
of the declared class names. ``str.isdigit`` is not the rule: it accepts ``"²"`` (which
``int`` rejects) and ``"١"`` (Arabic-Indic one, which ``int`` reads as 1).

With authentication on, the platform issues request ids itself (:class:`IdIssuer`):
a client's own id is never a storage key, so nobody can label a prediction they were
not served, or guess someone else's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_CHARS = 128
MAX_ITEM_INDEX_DIGITS = 6
"""Longest ``/<index>`` suffix of an item id (far above any ``--max-instances``)."""


RANDOM_POOL_BYTES = 4096


class _RandomPool:
    """Bytes from ``os.urandom``, drawn 4 KiB at a time.

    ``uuid.uuid4()`` makes one ``getrandom`` system call and builds a ``UUID`` object for
    every id: about 2 us, against 0.8 us from a pool of the same kernel randomness. The
    predictor names every request that brings no id of its own on the event loop, whose
    time per request is time the next forward pass waits for (docs/serving.md, "Speed").
    A forked child draws a fresh pool, so parent and child never share ids.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._refill_later)

    def _refill_later(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._at = b"", 0

    def take(self, count: int) -> bytes:
        with self._lock:
            at = self._at
            if at + count > len(self._pool):
                self._pool, at = os.urandom(max(RANDOM_POOL_BYTES, count)), 0
            self._at = at + count
            return self._pool[at : at + count]


_POOL = _RandomPool()
_UUID_VARIANTS = "89ab"


def new_request_id() -> str:
    """A random (version 4, RFC 4122) UUID as a string, as ``str(uuid.uuid4())`` gives."""
    raw = _POOL.take(16)
    h = raw.hex()
    variant = _UUID_VARIANTS[raw[8] >> 6 & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


class RequestIdError(ValueError):
    """A supplied request id or item id that breaks the rules; the message says which."""


def _visible_ascii(text: str) -> bool:
    return all("!" <= ch <= "~" for ch in text)


def ascii_digits(text: str) -> bool:
    """True for a non-empty string of ``0``-``9`` only."""
    return text.isascii() and text.isdigit()


def parse_request_id(value: object) -> str | None:
    """The client's request id, stripped; None when absent or blank (a fresh id is made).

    Raises :class:`RequestIdError` for an id that is too long or has characters that
    cannot travel in an HTTP header unchanged.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if len(text) > MAX_REQUEST_ID_CHARS:
        raise RequestIdError(f"request id longer than {MAX_REQUEST_ID_CHARS} characters")
    if not _visible_ascii(text):
        raise RequestIdError(
            "request id must be visible ASCII characters ('!' to '~', no spaces or controls)"
        )
    return text


def item_ids(request_id: str, count: int) -> list[str]:
    """One id per text: the request id itself, or ``<id>/<index>`` for several."""
    if count == 1:
        return [request_id]
    return [f"{request_id}/{i}" for i in range(count)]


def request_of(item_id: str) -> str:
    """The request id an item id belongs to (``abc/3`` -> ``abc``; ``abc`` -> ``abc``)."""
    head, _, tail = item_id.rpartition("/")
    return head if head and ascii_digits(tail) else item_id


def parse_item_id(value: object) -> str:
    """An item id named by feedback (exact: no stripping); raises :class:`RequestIdError`."""
    if not isinstance(value, str) or not value:
        raise RequestIdError('"request_id" must be a non-empty string')
    head = request_of(value)
    suffix = len(value) - len(head) - 1 if head != value else 0
    if suffix > MAX_ITEM_INDEX_DIGITS or len(head) > MAX_REQUEST_ID_CHARS:
        raise RequestIdError(f"request id longer than {MAX_REQUEST_ID_CHARS} characters")
    if not _visible_ascii(value):
        raise RequestIdError(
            "request id must be visible ASCII characters ('!' to '~', no spaces or controls)"
        )
    return value


# --- labels ---------------------------------------------------------------------------

MAX_LABEL_DIGITS = 9
"""Longer digit strings are no class index (and ``int`` of thousands of digits is slow)."""


def _digit_index(text: str) -> int | None:
    if ascii_digits(text) and len(text) <= MAX_LABEL_DIGITS:
        return int(text)
    return None


def label_index(value: object, labels: Sequence[str]) -> int | None:
    """The class ``value`` names, or None: an index (int or ASCII digits) or a declared name.

    A declared name wins over digits, so a class literally named ``"1"`` is found by name.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < len(labels) else None
    if not isinstance(value, str):
        return None
    if value in labels:
        return labels.index(value)
    index = _digit_index(value)
    return index if index is not None and index < len(labels) else None


def label_matches(value: object, name: str, index: int) -> bool:
    """Whether the label ``value`` names the class ``(name, index)`` (same rules as above).

    For callers that know one prediction but not every class name (the router): a digit
    string that is also another class's name is read as an index here; do not declare
    class names that are digit strings other than their own index.
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value == index
    if isinstance(value, str):
        return value == name or _digit_index(value) == index
    return False


# --- server-issued ids ----------------------------------------------------------------

SIGNED_ID_PREFIX = "m2"
"""First field of every id the platform issues (the format's version; ``m1`` ids carried the
origin in clear)."""
MAX_ORIGIN_BYTES = 8
"""Longest origin an id can carry (``router``, ``joiner`` and the roles are 6)."""
ROUTER_ORIGIN = "router"
"""Origin of ids the router issues (a predictor's own ids carry its role)."""
ID_KEY_CONTEXT = b"modeldeploy request-id signing key v1"
_MAC_CHARS = 22  # 132 bits of HMAC-SHA256, base64url


@dataclass(frozen=True)
class IdCheck:
    """What a signature check says about an id: ``ok``, or why it is refused."""

    verdict: Literal["ok", "not_issued"]
    origin: str = ""
    issued_at: float = 0.0


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class IdIssuer:
    """Issues request ids the platform can later recognise as its own, without a lookup.

    An id is ``m2.<sealed origin>.<issued, base36 seconds>.<16 random chars>.<MAC>``, the
    MAC an HMAC-SHA256 over the rest under a key only platform components hold (derived from
    the control token, which applications never get). The origin is sealed (XORed with a
    pad drawn from the key and the id's own random part, so it differs in every id): a
    predictor's ids carry its role, and a client that could read it would know which arm
    served it, and could label one arm's requests only. So a label can be refused for an id
    nobody issued before any store is consulted, an id's age is known even after the store
    forgot it, and a predictor can tell the router's ids (which it must store its
    prediction under, so labels posted to the router reach it) from a client's invention.
    """

    def __init__(self, key: bytes, origin: str, clock: Callable[[], float] = time.time) -> None:
        if not key:
            raise ValueError("the id signing key is empty")
        if not origin or not _visible_ascii(origin) or "." in origin or "/" in origin:
            raise ValueError(f"bad id origin {origin!r}")
        if len(origin) > MAX_ORIGIN_BYTES:
            raise ValueError(f"id origin {origin!r} is longer than {MAX_ORIGIN_BYTES} characters")
        self._key = hmac.new(key, ID_KEY_CONTEXT, hashlib.sha256).digest()
        self.origin = origin
        self._clock = clock

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())[:_MAC_CHARS]

    def _pad(self, stamp: str, nonce: str) -> bytes:
        return hmac.new(self._key, f"origin.{stamp}.{nonce}".encode(), hashlib.sha256).digest()

    def issue(self) -> str:
        """A fresh id: unguessable, signed, stamped with this issuer's (sealed) origin and
        the time."""
        stamp, nonce = _base36(int(self._clock())), _b64(secrets.token_bytes(12))
        raw = self.origin.encode().ljust(MAX_ORIGIN_BYTES, b"\0")
        sealed = _b64(bytes(a ^ b for a, b in zip(raw, self._pad(stamp, nonce), strict=False)))
        body = f"{SIGNED_ID_PREFIX}.{sealed}.{stamp}.{nonce}"
        return f"{body}.{self._mac(body)}"

    def check(self, item_or_request_id: str) -> IdCheck:
        """Whether the id (or an item id ``<id>/<n>``) was issued under this key, and by whom."""
        request_id = request_of(item_or_request_id)
        fields = request_id.split(".")
        if len(fields) != 5 or fields[0] != SIGNED_ID_PREFIX:
            return IdCheck("not_issued")
        body, mac = request_id.rsplit(".", 1)
        if not hmac.compare_digest(self._mac(body), mac):
            return IdCheck("not_issued")
        try:
            issued_at = float(int(fields[2], 36))
            sealed = base64.urlsafe_b64decode(fields[1] + "=" * (-len(fields[1]) % 4))
            pad = self._pad(fields[2], fields[3])
            origin = bytes(a ^ b for a, b in zip(sealed, pad, strict=False)).rstrip(b"\0")
            return IdCheck("ok", origin.decode("ascii"), issued_at)
        except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
            return IdCheck("not_issued")

    def age_s(self, check: IdCheck) -> float:
        """Seconds since ``check``'s id was issued (by this clock)."""
        return self._clock() - check.issued_at


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if not value:
            return out
