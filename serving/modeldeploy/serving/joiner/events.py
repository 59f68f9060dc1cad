"""KServe inference-logger CloudEvents: what the agent sends, parsed (pure).

KServe's agent (``pkg/logger``, KServe commit aaac4e29, the version whose CRDs are vendored
in ``tests/upstream/kserve-crds``) sends each logged request and response as a CloudEvent
1.0 in HTTP *binary* mode: the body is the inference body unchanged, the attributes are
``ce-`` headers. What the joiner relies on, with the upstream line that sets it:

- ``ce-type`` is ``org.kubeflow.serving.inference.request`` or ``...inference.response``
  (worker.go:39-40, set at worker.go:124);
- ``ce-id`` is the request's ``Ce-Id`` header or a fresh UUID, the *same* for the request
  and its response (handler.go:143 ``getOrCreateID``, handler.go:210-216), so it links an
  input to its output, but the client may choose it: it is no proof of anything;
- extensions ``inferenceservicename``, ``namespace``, ``component``, ``endpoint``
  (``default`` or ``canary``), ``metadata`` (JSON), ``recordedtime`` (worker.go:44-51,
  set at worker.go:126-137); Go's ``net/http`` writes them as ``Ce-Inferenceservicename``
  and so on (header names are case-insensitive);
- ``ce-source`` is the pod name (``--source-uri``, agent_injector.go:258), ``ce-time`` the
  time the request arrived or the response finished (worker.go:125, handler.go:162/200);
- ``Content-Type`` is the *request's* content type for both events (handler.go:144, :152
  and :188);
- a response is logged only when the predictor answered 200 (handler.go:183), and the log
  URL is used as configured, query string included (worker.go:88-89), which is how the
  operator tells the joiner which arm a revision is (:class:`Arm`).

Bodies: the predictor's v1 answer (``predictions[]`` with ``label``/``label_index``, the
issued ``request_id``), its v2 answer (``outputs`` ``label``/``label_index``, and
``probabilities`` in the full view; ``id``), in either view (``--response-detail``: the
version always comes from the logger URL, never from a body), and Triton's v2 answer
(``LABEL`` ``[n, 1]`` BYTES, ``LABEL_INDEX`` and ``NUM_LABELS`` ``[n, 1]`` INT64, and
``PROBABILITIES``
``[n, k]`` FP32 in the full view, from ``serving/triton/backend_model.py``; ``id`` echoed
from the request).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from modeldeploy.serving.contract.ids import RequestIdError, item_ids, parse_request_id
from modeldeploy.serving.contract.joiner import DEPLOYMENT_PARAM, ROLE_PARAM, VERSION_PARAM
from modeldeploy.serving.contract.names import ROLES
from modeldeploy.serving.router.pairing import ArmPrediction
from modeldeploy.serving.router.responses import json_too_deep, predictions_in

# worker.go:39-40
CE_REQUEST = "org.kubeflow.serving.inference.request"
CE_RESPONSE = "org.kubeflow.serving.inference.response"
# Binary-mode attribute headers (worker.go:44-51, 122-148; CloudEvents HTTP binding ``ce-``).
H_SPECVERSION = "ce-specversion"
H_ID = "ce-id"
H_TYPE = "ce-type"
H_SOURCE = "ce-source"
H_TIME = "ce-time"
H_ISVC = "ce-inferenceservicename"
H_NAMESPACE = "ce-namespace"
H_COMPONENT = "ce-component"
H_ENDPOINT = "ce-endpoint"
H_METADATA = "ce-metadata"
H_RECORDED = "ce-recordedtime"
ENDPOINTS = ("default", "canary")
"""``endpoint`` values (worker.go:48 "endpoint would be either default or canary")."""
PREDICTOR_COMPONENT = "predictor"
MAX_CE_ID_CHARS = 256

Kind = Literal["request", "response"]


class EventError(ValueError):
    """A post that is not a usable inference-logger event; the message says why."""


@dataclass(frozen=True)
class Arm:
    """Which arm a logged event came from, as the operator wrote it into the logger URL
    (:func:`modeldeploy.serving.contract.joiner.logger_url`).

    Query parameters, not the event's extensions, because in Serverless mode the canary
    revision carries its own copy of ``predictor.logger`` (and so its own role and
    version), while ``Ce-Endpoint`` says ``default`` for both revisions of one predictor.
    """

    deployment: str
    role: str
    version: str

    @classmethod
    def from_query(cls, query: str) -> Arm:
        params = parse_qs(query, keep_blank_values=True)

        def one(name: str) -> str:
            values = params.get(name) or [""]
            if len(values) != 1 or not values[0]:
                raise EventError(f"the logger URL needs exactly one non-empty {name!r} parameter")
            return values[0]

        role = one(ROLE_PARAM)
        if role not in ROLES:
            raise EventError(f"role {role!r} is not one of {list(ROLES)}")
        return cls(one(DEPLOYMENT_PARAM), role, one(VERSION_PARAM))


@dataclass(frozen=True)
class LoggedEvent:
    """One inference-logger CloudEvent: its attributes and raw body."""

    kind: Kind
    ce_id: str
    source: str
    namespace: str
    isvc: str
    component: str
    endpoint: str
    content_type: str
    body: bytes

    @property
    def link(self) -> str:
        """Key that pairs a request event with its response: same pod, same ``ce-id``.

        The pod (``ce-source``) is part of it, so two pods' events never meet; within a
        pod the first request under a ``ce-id`` keeps it (a client may choose ``Ce-Id``).
        """
        return f"{self.source}\x1f{self.ce_id}"


def parse_event(headers: Mapping[str, str], body: bytes) -> LoggedEvent:
    """The event in a binary-mode CloudEvents POST; raises :class:`EventError`."""
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get(H_SPECVERSION) != "1.0":
        raise EventError("not a CloudEvents 1.0 binary-mode event (ce-specversion)")
    ce_type = lower.get(H_TYPE, "")
    kinds: dict[str, Kind] = {CE_REQUEST: "request", CE_RESPONSE: "response"}
    if ce_type not in kinds:
        raise EventError(f"ce-type {ce_type!r} is not an inference request or response")
    ce_id = lower.get(H_ID, "")
    if not ce_id or len(ce_id) > MAX_CE_ID_CHARS:
        raise EventError("ce-id is missing or too long")
    return LoggedEvent(
        kind=kinds[ce_type],
        ce_id=ce_id,
        source=lower.get(H_SOURCE, ""),
        namespace=lower.get(H_NAMESPACE, ""),
        isvc=lower.get(H_ISVC, ""),
        component=lower.get(H_COMPONENT, ""),
        endpoint=lower.get(H_ENDPOINT, ""),
        content_type=lower.get("content-type", ""),
        body=body,
    )


@dataclass(frozen=True)
class Scored:
    """What one logged response says: the id it was answered under and per-item predictions."""

    request_id: str
    item_ids: tuple[str, ...]
    predictions: tuple[ArmPrediction, ...]
    classes: tuple[str, ...]
    """Every class name in index order, where the body shows them (v1's probabilities)."""
    class_count: int


def _json(body: bytes) -> dict[str, Any]:
    if json_too_deep(body):
        raise EventError("body JSON is nested too deep")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError(f"body is not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(parsed, dict):
        raise EventError("body is not a JSON object")
    return parsed


def _triton(answer: Mapping[str, Any], version: str) -> tuple[list[ArmPrediction], int]:
    """Triton's LABEL [n, 1] with LABEL_INDEX [n, 1] (INT64; every view) or, from
    repositories exported before it, PROBABILITIES [n, k] (the index is the row's argmax).
    The class count is NUM_LABELS [n, 1], else PROBABILITIES' width, else 0."""
    outputs = {o.get("name"): o for o in answer.get("outputs", []) if isinstance(o, dict)}
    label, probs = outputs.get("LABEL"), outputs.get("PROBABILITIES")
    if label is None:
        return [], 0
    count = _triton_count(outputs.get("NUM_LABELS")) or _triton_width(probs)
    indexes = outputs.get("LABEL_INDEX")
    if indexes is not None:
        names, values = label.get("data"), indexes.get("data")
        if not (isinstance(names, list) and isinstance(values, list)) or len(names) != len(values):
            return [], 0
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return [], 0
        return [
            ArmPrediction(version, str(n), v) for n, v in zip(names, values, strict=True)
        ], count
    if probs is None:
        return [], 0
    names, flat, shape = label.get("data"), probs.get("data"), probs.get("shape")
    if not (isinstance(names, list) and isinstance(flat, list) and isinstance(shape, list)):
        return [], 0
    if len(shape) != 2 or shape[0] != len(names) or shape[1] < 1:
        return [], 0
    rows, k = int(shape[0]), int(shape[1])
    if len(flat) != rows * k:
        return [], 0
    found = []
    for i, name in enumerate(names):
        row = flat[i * k : (i + 1) * k]
        found.append(ArmPrediction(version, str(name), max(range(k), key=row.__getitem__)))
    return found, k


def _triton_count(counts: object) -> int:
    data = counts.get("data") if isinstance(counts, dict) else None
    first = data[0] if isinstance(data, list) and data else None
    if isinstance(first, int) and not isinstance(first, bool) and first > 0:
        return first
    return 0


def _triton_width(probs: object) -> int:
    shape = probs.get("shape") if isinstance(probs, dict) else None
    if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int):
        return max(shape[1], 0)
    return 0


def _class_names(answer: Mapping[str, Any]) -> tuple[tuple[str, ...], int]:
    """Class names (v1: the label view's ``labels``, or the probabilities dict, in index
    order) or just their count (v2: the label view's ``num_labels`` parameter, or the
    probabilities' shape)."""
    names = answer.get("labels")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return tuple(names), len(names)
    parameters = answer.get("parameters")
    count = parameters.get("num_labels") if isinstance(parameters, dict) else None
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        return (), count
    preds = answer.get("predictions")
    if isinstance(preds, list) and preds and isinstance(preds[0], dict):
        probs = preds[0].get("probabilities")
        if isinstance(probs, dict):
            return tuple(str(k) for k in probs), len(probs)
    for output in answer.get("outputs") or []:
        if isinstance(output, dict) and output.get("name") == "probabilities":
            shape = output.get("shape")
            if isinstance(shape, list) and len(shape) == 2:
                return (), int(shape[1])
    return (), 0


def scored(body: bytes, version: str) -> Scored:
    """The predictions of a logged response body (v1, v2, Triton v2); raises :class:`EventError`.

    ``version`` is the arm's (from the logger URL): Triton answers with its own
    repository version number, not the registry's. ``""`` keeps the body's own.
    """
    try:
        return _scored(_json(body), version)
    except (TypeError, ValueError, OverflowError) as exc:  # a malformed field, not a crash
        if isinstance(exc, EventError):
            raise
        raise EventError(f"unreadable answer ({exc.__class__.__name__})") from exc


def _scored(answer: dict[str, Any], version: str) -> Scored:
    predictions, request_id = predictions_in(answer)
    classes, count = _class_names(answer)
    if not predictions:
        predictions, count = _triton(answer, version)
        request_id = answer.get("id") if isinstance(answer.get("id"), str) else None
    if not predictions:
        raise EventError("the response holds no predictions this joiner can read")
    try:
        request_id = parse_request_id(request_id)
    except RequestIdError as exc:
        raise EventError(str(exc)) from exc
    if request_id is None:
        raise EventError("the response names no request id")
    if version:
        predictions = [ArmPrediction(version, p.label, p.label_index) for p in predictions]
    if any(not 0 <= p.label_index < max(count, 1) for p in predictions) and count:
        raise EventError("a predicted class index is out of range")
    return Scored(
        request_id,
        tuple(item_ids(request_id, len(predictions))),
        tuple(predictions),
        classes,
        count,
    )


def protocol_of(body: bytes) -> str | None:
    """``v1`` (``instances``) or ``v2`` (``inputs``) for a JSON request body, else None."""
    try:
        parsed = _json(body)
    except EventError:
        return None
    if isinstance(parsed.get("instances"), list):
        return "v1"
    if isinstance(parsed.get("inputs"), list):
        return "v2"
    return None
