"""Register (or update) the platform's webhook in MLflow.

Idempotent by name: running it twice leaves one webhook, pointing at the latest URL,
events and secret, so it can sit in an install script or an operator start-up hook.
"""

from __future__ import annotations

from collections.abc import Sequence

from modeldeploy.registry.base import RegistryClient, WebhookInfo
from modeldeploy.registry.webhooks import EVENTS

DEFAULT_WEBHOOK_NAME = "modeldeploy"


def subscribe(
    client: RegistryClient,
    url: str,
    secret: str,
    *,
    name: str = DEFAULT_WEBHOOK_NAME,
    events: Sequence[str] = EVENTS,
) -> tuple[WebhookInfo, bool]:
    """Make MLflow deliver ``events`` to ``url`` signed with ``secret``.

    Returns the webhook and whether it was newly created (False: an existing webhook
    with that name was updated in place).
    """
    if not secret:
        raise ValueError("a webhook secret is required: unsigned deliveries are refused")
    for existing in client.list_webhooks():
        if existing.name == name:
            return client.update_webhook(existing.webhook_id, url, events, secret), False
    return client.create_webhook(name, url, events, secret), True
