"""The watcher and the webhook receiver against a dedicated real MLflow server:
an alias moved by hand is seen by polling and by a real webhook; forged and replayed
deliveries are refused; MLflow restarted mid-watch loses no change."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid

import pytest
from mlflow import MlflowClient

from modeldeploy.registry.base import ChangeKind
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.registry.subscribe import subscribe
from modeldeploy.registry.watcher import RegistryWatcher, WatchState
from modeldeploy.registry.webhooks import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookReceiver,
    sign,
)

pytestmark = pytest.mark.slow
SECRET = "integration-secret"


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # loopback only
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_alias_moved_by_hand_is_seen_by_webhook_and_polling(own_mlflow, tiny_checkpoint, serve_app):
    registry = MlflowRegistry(own_mlflow.url)
    model = f"wh-{uuid.uuid4().hex[:6]}"
    v1 = publish_checkpoint(registry, tiny_checkpoint, model, alias="champion").version
    v2 = publish_checkpoint(registry, tiny_checkpoint, model).version
    watcher = RegistryWatcher(registry, [model])
    watcher.poll()

    deliveries: list[tuple[dict[str, str], bytes]] = []
    receiver = WebhookReceiver(SECRET, lambda event: watcher.nudge(event.model))
    original = receiver.handle

    async def recording(request):  # keep the raw delivery to replay it below
        deliveries.append((dict(request.headers), await request.read()))
        return await original(request)

    from aiohttp import web

    app = web.Application()
    app.router.add_post("/webhooks/mlflow", recording)
    endpoint = serve_app(app).url + "/webhooks/mlflow"
    hook, created = subscribe(registry, endpoint, SECRET, name=f"hook-{model}")
    assert created
    assert subscribe(registry, endpoint, SECRET, name=f"hook-{model}") == (hook, False)
    time.sleep(1.5)  # let MLflow's 1 s webhook cache expire

    # A person moves the alias by hand, with the plain MLflow client.
    MlflowClient(own_mlflow.url, own_mlflow.url).set_registered_model_alias(model, "champion", v2)

    assert _wait_for(lambda: model in watcher.pending), "no verified webhook nudged the watcher"
    (headers, body) = next(
        (h, b) for h, b in deliveries if b"model_version_alias" in b and model.encode() in b
    )
    assert headers[SIGNATURE_HEADER].startswith("v1,")
    changes = watcher.poll([model]).changes
    moved = [c for c in changes if c.kind is ChangeKind.ALIAS_MOVED]
    assert [(c.alias, c.previous_version, c.version) for c in moved] == [("champion", v1, v2)]

    # Replaying that exact delivery is refused; so is a forged one.
    replay = {k: headers[k] for k in (DELIVERY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)}
    replay["Content-Type"] = "application/json"
    assert _post(endpoint, body, replay) == 401
    ts = str(int(time.time()))
    forged = {
        DELIVERY_ID_HEADER: "forged-1",
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: sign("not-the-secret", "forged-1", ts, body),
    }
    assert _post(endpoint, body, forged) == 401
    assert _post(endpoint, body, {"Content-Type": "application/json"}) == 401


def test_mlflow_restarted_mid_watch_the_change_made_meanwhile_is_seen(own_mlflow, tiny_checkpoint):
    registry = MlflowRegistry(own_mlflow.url)
    model = f"rs-{uuid.uuid4().hex[:6]}"
    v1 = publish_checkpoint(registry, tiny_checkpoint, model, alias="champion").version
    v2 = publish_checkpoint(registry, tiny_checkpoint, model, alias="challenger").version
    watcher = RegistryWatcher(registry, [model])
    watcher.poll()
    assert watcher.status.state is WatchState.READY

    own_mlflow.stop()
    try:
        started = time.monotonic()
        result = watcher.poll()
        assert time.monotonic() - started < 5, "an outage must be reported fast, not retried"
        assert result.changes == () and watcher.status.state is WatchState.UNAVAILABLE
        assert "unavailable" in watcher.status.describe()
    finally:
        own_mlflow.start()
    # The change lands before the watcher looks again (it is still backing off).
    MlflowClient(own_mlflow.url, own_mlflow.url).set_registered_model_alias(model, "champion", v2)
    MlflowClient(own_mlflow.url, own_mlflow.url).delete_registered_model_alias(model, "challenger")

    changes = watcher.poll().changes
    assert watcher.status.state is WatchState.READY
    assert {(c.kind, c.alias, c.version) for c in changes} == {
        (ChangeKind.ALIAS_MOVED, "champion", v2),
        (ChangeKind.ALIAS_REMOVED, "challenger", None),
    }
    assert v1 != v2
