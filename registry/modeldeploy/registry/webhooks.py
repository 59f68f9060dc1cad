"""Receive MLflow webhooks: verify them, then ask the watcher to poll that model now.

A webhook is only a hint that something changed; polling stays the truth, so a lost,
late or duplicated delivery costs at most one poll interval and never a wrong state.
What must hold is that nobody else can trigger work: every delivery is checked for

- a signature ``X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "{id}.{ts}.{body}")>``
  (several space-separated signatures are accepted, for secret rotation),
- a timestamp ``X-MLflow-Timestamp`` within ``tolerance`` seconds of now, and
- a delivery id ``X-MLflow-Delivery-Id`` not seen before (kept for the tolerance window,
  in bounded memory; older deliveries are refused as stale anyway).

Unsigned, forged, stale and replayed deliveries get 401 and are counted by outcome in
``modeldeploy_webhook_deliveries_total``. The checks are pure functions; the aiohttp
part is a thin handler the operator mounts in its own application.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from modeldeploy.registry.metrics import WEBHOOK_DELIVERIES

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
DEFAULT_PATH = "/webhooks/mlflow"
DEFAULT_TOLERANCE = 300.0

# The model-registry events the platform reacts to (all name a registered model).
EVENTS: tuple[str, ...] = (
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    UNSIGNED = "unsigned"
    FORGED = "forged"
    STALE = "stale"
    REPLAYED = "replayed"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class WebhookEvent:
    """A verified delivery, reduced to what the platform needs."""

    delivery_id: str
    entity: str
    action: str
    model: str
    version: str | None = None
    alias: str | None = None

    @property
    def event(self) -> str:
        return f"{self.entity}.{self.action}"


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The header value MLflow sends (used by tests and by anyone re-sending events)."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_valid(
    secrets: Sequence[str], delivery_id: str, timestamp: str, body: bytes, header: str
) -> bool:
    """Constant-time check of any ``v1,<sig>`` in ``header`` against any secret."""
    offered: list[bytes] = []
    for part in header.split():
        version, _, value = part.partition(",")
        if version != SIGNATURE_VERSION or not value:
            continue
        try:
            offered.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    for secret in secrets:
        content = f"{delivery_id}.{timestamp}.".encode() + body
        expected = hmac.new(secret.encode(), content, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            return True
    return False


class ReplayGuard:
    """Delivery ids seen within the tolerance window, at most ``capacity`` of them."""

    def __init__(self, window: float, capacity: int = 10_000) -> None:
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, delivery_id: str) -> bool:
        return delivery_id in self._seen

    def remember(self, delivery_id: str, now: float) -> None:
        self._seen[delivery_id] = now
        self._seen.move_to_end(delivery_id)
        while self._seen:
            oldest_id, at = next(iter(self._seen.items()))
            if len(self._seen) > self.capacity or now - at > self.window:
                del self._seen[oldest_id]
            else:
                break


def check_delivery(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Sequence[str],
    guard: ReplayGuard,
    tolerance: float,
    now: float,
) -> Outcome:
    """Classify one delivery (pure apart from reading the guard); accepted ids are not
    remembered here, so a delivery that fails later can be retried by MLflow."""
    delivery_id = headers.get(DELIVERY_ID_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not signature or not delivery_id or not timestamp:
        return Outcome.UNSIGNED
    if not signature_valid(secrets, delivery_id, timestamp, body, signature):
        return Outcome.FORGED
    try:
        sent = float(timestamp)
    except ValueError:
        return Outcome.FORGED  # signed garbage cannot come from a holder of the secret
    if abs(now - sent) > tolerance:
        return Outcome.STALE
    if guard.seen(delivery_id):
        return Outcome.REPLAYED
    return Outcome.ACCEPTED


def parse_event(delivery_id: str, body: bytes) -> WebhookEvent:
    """Read MLflow's envelope ``{"entity", "action", "timestamp", "data": {...}}``."""
    payload = json.loads(body)
    data = payload.get("data") or {}
    model = data.get("name")
    if not isinstance(model, str) or not model:
        raise ValueError("payload has no data.name")
    version = data.get("version")
    return WebhookEvent(
        delivery_id=delivery_id,
        entity=str(payload.get("entity", "")),
        action=str(payload.get("action", "")),
        model=model,
        version=str(version) if version is not None else None,
        alias=data.get("alias"),
    )


OnEvent = Callable[[WebhookEvent], Awaitable[object] | object]


class WebhookReceiver:
    """The aiohttp side: mount :meth:`handle` on a POST route, or serve :meth:`app`."""

    def __init__(
        self,
        secrets: str | Sequence[str],
        on_event: OnEvent,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        replay_capacity: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secrets = (secrets,) if isinstance(secrets, str) else tuple(secrets)
        if not self.secrets or not all(self.secrets):
            raise ValueError("a webhook receiver needs a non-empty secret")
        self.on_event = on_event
        self.tolerance = tolerance
        self.guard = ReplayGuard(window=2 * tolerance, capacity=replay_capacity)
        self.clock = clock

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = self.clock()
        outcome = check_delivery(
            request.headers,
            body,
            secrets=self.secrets,
            guard=self.guard,
            tolerance=self.tolerance,
            now=now,
        )
        if outcome is not Outcome.ACCEPTED:
            return self._refuse(outcome, request, 401)
        delivery_id = request.headers[DELIVERY_ID_HEADER]
        try:
            event = parse_event(delivery_id, body)
        except (ValueError, AttributeError) as exc:
            log.warning("signed webhook %s with an unreadable body: %s", delivery_id, exc)
            self.guard.remember(delivery_id, now)
            return self._refuse(Outcome.MALFORMED, request, 400)
        self.guard.remember(delivery_id, now)
        WEBHOOK_DELIVERIES.labels(outcome=Outcome.ACCEPTED.value).inc()
        try:
            result = self.on_event(event)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the hint is lost, polling will still see the change
            log.exception("webhook callback failed for %s", event)
        return web.json_response({"status": "accepted", "model": event.model})

    def _refuse(self, outcome: Outcome, request: web.Request, status: int) -> web.Response:
        WEBHOOK_DELIVERIES.labels(outcome=outcome.value).inc()
        log.warning("refused webhook from %s: %s", request.remote, outcome.value)
        return web.json_response({"status": "refused", "reason": outcome.value}, status=status)

    def app(self, path: str = DEFAULT_PATH) -> web.Application:
        application = web.Application()
        application.router.add_post(path, self.handle)
        return application
