"""ASGI middleware of the predictor: body limits, UTF-8, JSON depth, latency and outcome.

It wraps the whole REST request, so ``modeldeploy_request_duration_seconds`` is the
time from the request reaching the server to the response being sent (JSON decoding,
tokenization, queueing and encoding included), and ``modeldeploy_requests_total``
counts failures that never reach the model (a body that is too large, invalid UTF-8
or invalid JSON) as ``bad_input`` too. gRPC is timed in the model instead.

On every route it also counts the process's own 5xx answers
(``modeldeploy_server_errors_total``), and it answers 404 on KServe's model repository
routes (``/v2/repository/...``): one anonymous ``unload`` there would otherwise take the
model away (every request a 404, ``/load`` unable to bring it back, readiness still 200).

A body over the limit is read to its end (up to ``DRAIN_MAX_BYTES``) before
the 413 goes out, so the client reads the answer instead of a connection reset.

**The lean v1 route.** Given the model, the guard answers ``POST /v1/models/<its
name>:predict`` itself: the JSON it already parsed to check the body goes straight to
the model (``preprocess -> predict -> postprocess`` as kserve's ``Model.__call__`` runs
them, :mod:`stages`, so kserve's own latency histograms still see it) and the answer is
encoded once with orjson. Profiled under concurrency 16 on 2 cores, the FastAPI /
Starlette / kserve layers between the socket and the model (routing, dependency
resolution, request objects, kserve's per-request CPU timing, parsing the body a second
time) took about three quarters of the event loop's CPU, which the forward passes
needed. The answer is the one kserve would give: the same body, ``content-type``,
``x-request-id``, typed errors rendered by :func:`errors.error_response` exactly as the
app's handlers render them, anything else as kserve's generic 500. Everything else (v2,
gRPC, a model that is not ready, another model's name, CloudEvents) goes through kserve
unchanged.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from prometheus_client import REGISTRY, CollectorRegistry

from modeldeploy.serving.errors import (
    BadInput,
    BodyTooLarge,
    InvalidUtf8,
    MalformedRequest,
    RouteDisabled,
    error_body,
    error_response,
    outcome_for_status,
)
from modeldeploy.serving.metrics import ArmMetrics
from modeldeploy.serving.router.responses import (
    MAX_JSON_DEPTH,
    json_too_deep,
    server_errors_counter,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_V1 = re.compile(r"^/v1/models/[^/]+:predict$")
_V2 = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")
log = logging.getLogger(__name__)
BINARY_HEADER = b"inference-header-content-length"
JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
"""The options of FastAPI's ORJSONResponse, which kserve answers v1 with."""
DISABLED_PREFIX = "/v2/repository"
JSON_TYPE = b"application/json"
DRAIN_MAX_BYTES = 64 * 1024 * 1024
"""A body up to this size is read (and dropped) before the 413 goes out; beyond it the
connection is closed under the client (nobody honest sends that much)."""


def protocol_of(path: str) -> str | None:
    """``v1`` / ``v2`` for the inference routes, None for everything else."""
    if _V1.match(path):
        return "v1"
    if _V2.match(path):
        return "v2"
    return None


def check_body(body: bytes, headers: dict[bytes, bytes]) -> Any:
    """The JSON part of the body must be UTF-8 JSON (binary tensor bytes are checked later).

    Checked here, before kserve decodes it, so these failures get our typed errors
    (code and message) like every other bad input. Returns the parsed JSON part (None
    when a malformed binary header leaves it to kserve), so the lean route parses once.
    """
    json_part = body
    if BINARY_HEADER in headers:
        try:
            json_part = body[: int(headers[BINARY_HEADER])]
        except ValueError:
            return None  # kserve reports the malformed header itself
    try:
        json_part.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUtf8(
            f"request body is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        ) from exc
    if json_too_deep(json_part):
        raise MalformedRequest(f"request JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"request body is not valid JSON: {exc}") from exc


class InferenceGuard:
    """Pure ASGI middleware (no Starlette BaseHTTPMiddleware: it would buffer twice)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ArmMetrics,
        max_body_bytes: int,
        registry: CollectorRegistry = REGISTRY,
        model: Any = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        # The lean v1 route (module docstring): only for this model's own path.
        self.model = model
        self._lean_path = f"/v1/models/{model.name}:predict" if model is not None else None
        deployment = metrics.base_labels["deployment"]
        counter = server_errors_counter(registry)
        self._own_5xx = lambda status: counter.labels(deployment, "predictor", str(status)).inc()
        counter.labels(deployment, "predictor", "500")  # exported as 0 from the start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == DISABLED_PREFIX or path.startswith(DISABLED_PREFIX + "/"):
            await self._reply(send, RouteDisabled())
            return
        status = {"code": 500}

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                if status["code"] >= 500:
                    self._own_5xx(status["code"])
            await send(message)

        protocol = protocol_of(path)
        if protocol is None or scope.get("method") != "POST":
            await self.app(scope, receive, send_and_record)
            return
        started = time.perf_counter()
        try:
            headers = dict(scope.get("headers") or [])
            body = await self._read_body(headers, receive)
            parsed = check_body(body, headers)
        except BadInput as exc:
            await self._reply(send_and_record, exc)
        else:
            if path == self._lean_path and self._lean(headers):
                await self._predict_v1(parsed, headers, send_and_record)
                return
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

    def _lean(self, headers: dict[bytes, bytes]) -> bool:
        """Whether kserve would do nothing more than call the model (no CloudEvent)."""
        return bool(self.model.ready) and not any(k.startswith(b"ce-") for k in headers)

    async def _predict_v1(self, payload: Any, raw: dict[bytes, bytes], send: Send) -> None:
        """Call the model on the parsed body and answer as kserve's v1 endpoint would."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw.items()}
        try:
            response, extra = await self.model(payload, headers)
            status, body = 200, orjson.dumps(response, option=JSON_OPTIONS)
            extra.pop("content-length", None)
        except Exception as exc:
            status, body, extra = error_response(exc)
            if status >= 500 and not getattr(exc, "code", None):
                log.error("Exception:", exc_info=exc)
        out = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in extra.items()]
        out += [(b"content-length", str(len(body)).encode()), (b"content-type", JSON_TYPE)]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._drain(receive, 0)
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
                if message.get("more_body", False):
                    await self._drain(receive, size)
                raise BodyTooLarge(f"request body exceeds the {limit} byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _drain(self, receive: Receive, already: int) -> None:
        """Read and drop the rest of the body (up to ``DRAIN_MAX_BYTES``), so the
        server does not close the socket under a client that is still sending."""
        budget = max(DRAIN_MAX_BYTES, self.max_body_bytes)
        size = already
        while size <= budget:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    @staticmethod
    async def _reply(send: Send, exc: BadInput | RouteDisabled) -> None:
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
