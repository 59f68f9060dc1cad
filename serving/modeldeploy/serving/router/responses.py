"""Read request ids and per-item predictions out of predictor bodies (pure).

The router forwards bodies untouched; it only looks inside to learn the request id and,
from JSON answers, what each arm predicted (for pairing, agreement and the versions).
Binary-tensor answers (the v2 binary extension) are forwarded but not read: those
requests are routed and counted, not paired.

It also holds the two guards the router and the predictor share: the JSON depth limit
(checked before any parser recurses) and the counter of a process's own 5xx answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from modeldeploy.serving.contract import names as n
from modeldeploy.serving.per_registry import PerRegistry
from modeldeploy.serving.router.pairing import ArmPrediction

REQUEST_ID_HEADER = "x-request-id"
BINARY_HEADER = "inference-header-content-length"


def json_part(body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The JSON object of a request or response body (the header part of a binary one)."""
    length = headers.get(BINARY_HEADER)
    try:
        raw = body[: int(length)] if length is not None else body
        if json_too_deep(raw):
            return None
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def request_id_in(body: bytes, headers: Mapping[str, str]) -> str | None:
    """The id the client chose, by the predictor's rule: the body's ``id``, then the header."""
    parsed = json_part(body, headers)
    if parsed is not None and isinstance(parsed.get("id"), str) and parsed["id"].strip():
        return str(parsed["id"]).strip()
    supplied = headers.get(REQUEST_ID_HEADER)
    if supplied and supplied.strip():
        return supplied.strip()
    return None


def predictions_in(answer: Mapping[str, Any]) -> tuple[list[ArmPrediction], str | None]:
    """Per-item predictions and the request id from a v1 or v2 JSON answer.

    Returns ``([], None)`` for anything else (an error body, binary outputs). The version
    is the one the answer states: none (``""``) in the label view, so callers that know
    which arm answered (the router's arms table, the joiner's logger URL) use their own.
    """
    if isinstance(answer.get("predictions"), list):  # v1
        version = str(answer.get("model_version", ""))
        found = []
        for item in answer["predictions"]:
            if not isinstance(item, dict) or "label_index" not in item:
                return [], None
            found.append(ArmPrediction(version, str(item.get("label")), int(item["label_index"])))
        return found, _str_or_none(answer.get("request_id"))
    if isinstance(answer.get("outputs"), list):  # v2
        params = answer.get("parameters")
        params = params if isinstance(params, dict) else {}  # a malformed body is no crash
        version = str(params.get("model_version") or answer.get("model_version") or "")
        outputs = {o.get("name"): o.get("data") for o in answer["outputs"] if isinstance(o, dict)}
        labels, indices = outputs.get("label"), outputs.get("label_index")
        if not isinstance(indices, list) or not isinstance(labels, list):
            return [], None
        if len(labels) != len(indices):
            return [], None
        return (
            [ArmPrediction(version, str(n), int(i)) for n, i in zip(labels, indices, strict=True)],
            _str_or_none(answer.get("id")),
        )
    return [], None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# --- guards shared by the router and the predictor -----------------------------------

MAX_JSON_DEPTH = 64
"""Deepest JSON nesting accepted in a request (a v2 request needs about 5). Deeper bodies
are refused with a 400 before any parser recurses into them."""

_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``raw`` nests arrays/objects more than ``limit`` deep (strings skipped).

    One regex pass that stops at the first level past the limit, so a hostile body costs
    at most one scan and nothing recurses; malformed JSON is left for the parser to refuse.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # too few brackets anywhere (strings included) to nest that deep
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


_SERVER_ERRORS = PerRegistry(
    lambda registry: Counter(
        n.SERVER_ERRORS,
        "5xx answers this process produced itself, by component and HTTP status.",
        n.SERVER_ERROR_LABELS,
        registry=registry,
    )
)


def server_errors_counter(registry: CollectorRegistry = REGISTRY) -> Counter:
    """``modeldeploy_server_errors_total`` in ``registry`` (created once per registry)."""
    return _SERVER_ERRORS(registry)


def router_guard(errors: Counter, deployment: str) -> Any:
    """aiohttp middleware of the router: the depth limit on every POST body, and a JSON 500
    (counted in ``errors``) instead of aiohttp's bare one when a handler fails."""
    import logging

    from aiohttp import web

    log = logging.getLogger("modeldeploy.router")
    own_500 = errors.labels(deployment, "router", "500")

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and json_too_deep(await request.read()):
            message = f"request JSON is nested deeper than {MAX_JSON_DEPTH} levels"
            return web.json_response({"error": message, "code": "bad_input"}, status=400)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # a bug of ours: say so, count it, keep serving
            own_500.inc()
            log.exception("router failed on %s %s", request.method, request.path)
            body = {"error": f"router error: {type(exc).__name__}", "code": "internal_error"}
            return web.json_response(body, status=500)

    return guard
