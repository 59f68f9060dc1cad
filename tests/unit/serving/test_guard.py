"""The predictor's ASGI guard, driven directly: own 5xx counted, repository routes 404,
oversize bodies drained before the 413, deep JSON refused."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from modeldeploy.serving.errors import MalformedRequest
from modeldeploy.serving.metrics import ArmMetrics
from modeldeploy.serving.middleware import InferenceGuard, check_body


def run(
    app: Any, path: str, chunks: list[bytes], method: str = "POST", length: int | None = None
) -> tuple[list[dict], int, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = ArmMetrics("d", "1", "stable", ["neg", "pos"], registry=registry)
    guard = InferenceGuard(app, metrics, max_body_bytes=100, registry=registry)
    sent: list[dict] = []
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    scope = {"type": "http", "path": path, "method": method, "headers": headers}

    async def receive() -> dict:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent, len(pending), registry


def errors(registry: CollectorRegistry, status: str) -> float | None:
    return registry.get_sample_value(
        "modeldeploy_server_errors_total",
        {"deployment": "d", "component": "predictor", "status": status},
    )


def answering(status: int):
    async def app(_scope, receive, send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


@pytest.mark.parametrize("path", ["/v1/models/m:predict", "/v2/health/ready", "/metrics"])
def test_own_5xx_are_counted_on_every_route(path: str):
    _, _, registry = run(answering(500), path, [b'{"instances": ["a"]}'])
    assert errors(registry, "500") == 1
    _, _, registry = run(answering(200), path, [b'{"instances": ["a"]}'])
    assert errors(registry, "500") == 0


@pytest.mark.parametrize(
    "path", ["/v2/repository/models/m/unload", "/v2/repository/models/m/load", "/v2/repository"]
)
def test_repository_routes_never_reach_kserve(path: str):
    sent, _, _ = run(answering(200), path, [b""])
    assert sent[0]["status"] == 404
    assert orjson.loads(sent[1]["body"])["code"] == "route_disabled"


def test_an_oversize_body_is_read_to_its_end_before_the_413():
    chunks = [b"x" * 60] * 50  # 3000 bytes against a limit of 100, streamed
    sent, left, _ = run(answering(200), "/v1/models/m:predict", chunks)
    assert left == 0  # every chunk was taken off the socket
    assert sent[0]["status"] == 413
    sent, left, _ = run(answering(200), "/v1/models/m:predict", chunks, length=3000)
    assert left == 0 and sent[0]["status"] == 413


def test_json_deeper_than_the_limit_is_malformed():
    check_body(b'{"a": ' + b"[" * 60 + b"]" * 60 + b"}", {})
    with pytest.raises(MalformedRequest, match="nested deeper"):
        check_body(b'{"a": ' + b"[" * 70 + b"]" * 70 + b"}", {})
