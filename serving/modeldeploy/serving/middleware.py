"""ASGI middleware on the inference routes: body limits, UTF-8, latency and outcome.

It wraps the whole REST request, so ``modeldeploy_request_duration_seconds`` is the
time from the request reaching the server to the response being sent (JSON decoding,
tokenization, queueing and encoding included), and ``modeldeploy_requests_total``
counts failures that never reach the model (a body that is too large, invalid UTF-8
or invalid JSON) as ``bad_input`` too. gRPC is timed in the model instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from modeldeploy.serving.errors import (
    BadInput,
    BodyTooLarge,
    InvalidUtf8,
    MalformedRequest,
    error_body,
    outcome_for_status,
)
from modeldeploy.serving.metrics import ArmMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_V1 = re.compile(r"^/v1/models/[^/]+:predict$")
_V2 = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")
BINARY_HEADER = b"inference-header-content-length"


def protocol_of(path: str) -> str | None:
    """``v1`` / ``v2`` for the inference routes, None for everything else."""
    if _V1.match(path):
        return "v1"
    if _V2.match(path):
        return "v2"
    return None


def check_body(body: bytes, headers: dict[bytes, bytes]) -> None:
    """The JSON part of the body must be UTF-8 JSON (binary tensor bytes are checked later).

    Checked here, before kserve decodes it, so these failures get our typed errors
    (code and message) like every other bad input.
    """
    json_part = body
    if BINARY_HEADER in headers:
        try:
            json_part = body[: int(headers[BINARY_HEADER])]
        except ValueError:
            return  # kserve reports the malformed header itself
    try:
        json_part.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUtf8(
            f"request body is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        ) from exc
    try:
        orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"request body is not valid JSON: {exc}") from exc


class InferenceGuard:
    """Pure ASGI middleware (no Starlette BaseHTTPMiddleware: it would buffer twice)."""

    def __init__(self, app: ASGIApp, metrics: ArmMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protocol = protocol_of(scope.get("path", "")) if scope["type"] == "http" else None
        if protocol is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            headers = dict(scope.get("headers") or [])
            body = await self._read_body(headers, receive)
            check_body(body, headers)
        except BadInput as exc:
            await self._reply(send_and_record, exc)
        else:
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_and_record)
        finally:
            self.metrics.observe_request(
                protocol, outcome_for_status(status["code"]), time.perf_counter() - started
            )

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"request body of {int(declared)} bytes exceeds the {limit} limit")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"request body exceeds the {limit} byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    async def _reply(send: Send, exc: BadInput) -> None:
        payload = orjson.dumps(error_body(exc))
        await send(
            {
                "type": "http.response.start",
                "status": exc.http_status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
