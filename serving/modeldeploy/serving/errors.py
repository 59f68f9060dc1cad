"""Typed serving errors and their mapping to HTTP statuses, in one place.

Each bad-input case is its own class so the response says exactly what was wrong
and the outcome counters can tell a client's mistake (4xx, ``bad_input``) from
ours (5xx, ``error``). The classes subclass kserve's ``InvalidInput`` and
``InferenceError`` so kserve's gRPC interceptor maps them too (INVALID_ARGUMENT
for bad input); over REST our own handler below answers first.
"""

from __future__ import annotations

from typing import Any

from kserve.errors import InferenceError, InvalidInput


class BadInput(InvalidInput):
    """The client sent something we will not score; answered with a 4xx."""

    http_status = 400
    code = "bad_input"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class EmptyText(BadInput):
    code = "empty_text"


class WrongType(BadInput):
    code = "wrong_type"


class TooManyInstances(BadInput):
    code = "too_many_instances"


class TextTooLong(BadInput):
    code = "text_too_long"


class InvalidUtf8(BadInput):
    code = "invalid_utf8"


class MalformedRequest(BadInput):
    code = "malformed_request"


class BodyTooLarge(BadInput):
    http_status = 413
    code = "body_too_large"


class TokenizationFailed(BadInput):
    code = "tokenization_failed"


class RouteDisabled(BadInput):
    """A route kserve serves that a predictor must not (the model repository API)."""

    http_status = 404
    code = "route_disabled"

    def __init__(self, reason: str = "") -> None:
        super().__init__(
            reason
            or "the model repository API (/v2/repository/...) is disabled on this predictor: "
            "models are loaded at start and never unloaded"
        )


class ServingFailure(InferenceError):
    """Our side failed; answered with a 5xx and counted as ``error``."""

    http_status = 500
    code = "internal_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class NanOutput(ServingFailure):
    code = "nan_output"


class Overloaded(ServingFailure):
    http_status = 503
    code = "overloaded"


def status_for(exc: BaseException) -> int:
    """The HTTP status for any exception: typed errors carry theirs, the rest are 500."""
    if isinstance(exc, BadInput | ServingFailure):
        return exc.http_status
    if isinstance(exc, InvalidInput):  # kserve's own decoding errors (bad JSON, ...)
        return 400
    return 500


def outcome_for_status(status: int) -> str:
    """Map an HTTP status to the ``outcome`` label of ``modeldeploy_requests_total``."""
    if status < 400:
        return "ok"
    if status < 500:
        return "bad_input"
    return "error"


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON body of an error response: a stable code and a readable message."""
    code = getattr(exc, "code", "bad_input" if isinstance(exc, InvalidInput) else "internal_error")
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return {"error": reason, "code": code}


def error_response(exc: BaseException) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and extra headers of the REST answer to ``exc``.

    Typed errors as :func:`install`'s handlers answer them, kserve's ``InvalidInput`` and
    ``InferenceError`` as kserve's handlers do, anything else as kserve's generic handler
    does (500, ``{"error": "Type : message"}``).
    Used by the predictor's lean v1 route, which answers without the app's handlers.
    """
    import orjson

    if isinstance(exc, BadInput | ServingFailure):
        headers = {"Retry-After": "1"} if isinstance(exc, Overloaded) else {}
        return exc.http_status, orjson.dumps(error_body(exc)), headers
    if isinstance(exc, InvalidInput | InferenceError):  # kserve's own handlers
        return status_for(exc), orjson.dumps({"error": str(exc)}), {}
    return 500, orjson.dumps({"error": f"{type(exc).__name__} : {exc}"}), {}


def install(app: Any) -> None:
    """Register the handlers on a FastAPI app (before its first request).

    Starlette picks the handler of the most specific class in the exception's MRO,
    so these win over kserve's handlers for ``InvalidInput`` and ``InferenceError``.
    """
    import orjson
    from fastapi import Response

    async def handle(_request: Any, exc: Exception) -> Response:
        return Response(
            orjson.dumps(error_body(exc)),
            status_code=status_for(exc),
            media_type="application/json",
            headers={"Retry-After": "1"} if isinstance(exc, Overloaded) else None,
        )

    app.add_exception_handler(BadInput, handle)
    app.add_exception_handler(ServingFailure, handle)
