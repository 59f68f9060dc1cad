"""Read request ids and per-item predictions out of predictor bodies (pure).

The router forwards bodies untouched; it only looks inside to learn the request id and,
from JSON answers, what each arm predicted (for pairing, agreement and the versions).
Binary-tensor answers (the v2 binary extension) are forwarded but not read: those
requests are routed and counted, not paired.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modeldeploy.serving.router.pairing import ArmPrediction

REQUEST_ID_HEADER = "x-request-id"
BINARY_HEADER = "inference-header-content-length"


def json_part(body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The JSON object of a request or response body (the header part of a binary one)."""
    length = headers.get(BINARY_HEADER)
    try:
        raw = body[: int(length)] if length is not None else body
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
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

    Returns ``([], None)`` for anything else (an error body, binary outputs).
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
        params = answer.get("parameters") or {}
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
