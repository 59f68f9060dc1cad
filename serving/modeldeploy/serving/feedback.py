"""Late labels: join feedback to the stored prediction and count it once.

Labels arrive after the fact (a user's correction, a reviewer, a probe), so every
prediction is remembered for a while under its id. ``POST /v1/feedback`` with
``{"request_id": ..., "label": ...}`` (label as index or name, optional
``"source": "feedback" | "probe"``) looks the id up and increments
``modeldeploy_labelled_predictions_total{source, correct}`` for this arm.

The store is the contract's :class:`~modeldeploy.serving.contract.store.BoundedStore`
(oldest first out, entries expire after a TTL, and ids that left are remembered so a
late label gets a 404 that says "expired" rather than "unknown"). Feedback for an id
that already got some is acknowledged but not counted again, so retries are safe; a
new prediction under an id that was already labelled does not reopen it either.
Request ids and label values follow :mod:`modeldeploy.serving.contract.ids`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modeldeploy.serving.contract import names as contract_names
from modeldeploy.serving.contract.ids import RequestIdError, label_index, parse_item_id
from modeldeploy.serving.contract.store import (
    DEFAULT_STORE_CAPACITY,
    DEFAULT_STORE_TTL_S,
    BoundedStore,
)
from modeldeploy.serving.metrics import ArmMetrics

Lookup = Literal["found", "unknown", "expired", "duplicate"]
SOURCES = contract_names.LABEL_SOURCES


@dataclass
class StoredPrediction:
    label_index: int
    labelled: bool = False


class PredictionStore:
    """Item id -> prediction in the contract's :class:`BoundedStore`, plus "labelled" marks."""

    def __init__(
        self,
        capacity: int = DEFAULT_STORE_CAPACITY,
        ttl_s: float = DEFAULT_STORE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store: BoundedStore[StoredPrediction] = BoundedStore(capacity, ttl_s, clock)
        self.capacity = capacity
        self.ttl_s = ttl_s

    def __len__(self) -> int:
        return len(self._store)

    @property
    def estimated_bytes(self) -> int:
        """Memory of entries and tombstones by the store's cost model (bounded)."""
        return self._store.estimated_bytes

    @property
    def max_bytes(self) -> int:
        return self._store.max_bytes

    def put(self, key: str, label_index: int) -> None:
        """Remember a prediction. An id that was already labelled stays labelled (and is
        not re-timed): predicting it again must not let the same id be counted twice."""
        status, entry = self._store.lookup(key)
        if status == "found" and entry is not None and entry.labelled:
            return
        self._store.put(key, StoredPrediction(label_index))

    def take(self, key: str) -> tuple[Lookup, StoredPrediction | None]:
        """Look ``key`` up for labelling; marks it labelled so a repeat is a duplicate."""
        status, entry = self._store.lookup(key)
        if entry is None:
            return status, None
        if entry.labelled:
            return "duplicate", entry
        entry.labelled = True
        return "found", entry


class FeedbackError(Exception):
    """A feedback request that cannot be joined; carries its HTTP status and reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def resolve_label(value: object, labels: Sequence[str]) -> int:
    """A label given as index (int or ASCII-digit string) or class name, as a class index."""
    index = label_index(value, labels)
    if index is None:
        raise FeedbackError(
            400,
            "bad_input",
            f"unknown label {value!r}; expected one of {list(labels)} or 0..{len(labels) - 1}",
        )
    return index


def apply_feedback(
    body: object, store: PredictionStore, labels: Sequence[str], metrics: ArmMetrics
) -> dict[str, Any]:
    """Join one feedback body to its prediction and count it (the route's whole logic)."""
    try:
        if not isinstance(body, dict):
            raise FeedbackError(400, "bad_input", 'expected {"request_id": ..., "label": ...}')
        try:
            request_id = parse_item_id(body.get("request_id"))
        except RequestIdError as exc:
            raise FeedbackError(400, "bad_input", str(exc)) from exc
        source = body.get("source", "feedback")
        if source not in SOURCES:
            raise FeedbackError(400, "bad_input", f'"source" must be one of {list(SOURCES)}')
        true_index = resolve_label(body.get("label"), labels)
        status, entry = store.take(request_id)
        if status == "unknown":
            raise FeedbackError(
                404, "unknown_id", f"no prediction with request id {request_id!r} was made here"
            )
        if status == "expired":
            raise FeedbackError(
                404,
                "expired",
                f"the prediction for request id {request_id!r} has expired from the store "
                f"(TTL {store.ttl_s:g}s, capacity {store.capacity})",
            )
    except FeedbackError as exc:
        metrics.reject_feedback(exc.reason)
        raise
    assert entry is not None
    correct = entry.label_index == true_index
    counted = status == "found"
    if counted:
        metrics.observe_labelled(source, correct)
    else:
        metrics.reject_feedback("duplicate")
    return {
        "request_id": request_id,
        "predicted": labels[entry.label_index],
        "label": labels[true_index],
        "correct": correct,
        "counted": counted,
        "source": source,
        **{k: v for k, v in metrics.base_labels.items() if k == "model_version"},
    }


def feedback_router(store: PredictionStore, labels: Sequence[str], metrics: ArmMetrics) -> Any:
    """A FastAPI router with ``POST /v1/feedback``, mounted on the kserve app."""
    import orjson
    from fastapi import APIRouter, Request, Response

    def reply(status: int, content: dict[str, Any]) -> Response:
        return Response(orjson.dumps(content), status_code=status, media_type="application/json")

    async def post_feedback(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            metrics.reject_feedback("bad_input")
            return reply(400, {"error": "body is not valid JSON", "code": "bad_input"})
        try:
            return reply(200, apply_feedback(body, store, labels, metrics))
        except FeedbackError as exc:
            return reply(exc.status, {"error": exc.message, "code": exc.reason})

    # With postponed annotations FastAPI would look ``Request`` up in this module's
    # globals (it is imported lazily here), so give it the classes themselves.
    post_feedback.__annotations__ = {"request": Request, "return": Response}
    router = APIRouter()
    router.add_api_route("/v1/feedback", post_feedback, methods=["POST"], response_model=None)
    return router


_STORE_GAUGES: dict[int, tuple[Any, Any]] = {}


def export_store_size(store: PredictionStore, deployment: str, registry: Any = None) -> None:
    """Gauges of the store's entries and estimated bytes, read at scrape time (no cost per
    request), so a soak can show the store stays flat. Registered once per registry; a
    later store (a second build in one process) takes the series over."""
    from prometheus_client import REGISTRY, Gauge

    from modeldeploy.serving.contract import names as n

    registry = registry or REGISTRY
    if id(registry) not in _STORE_GAUGES:
        _STORE_GAUGES[id(registry)] = (
            Gauge(n.STORE_ENTRIES, "Entries in the bounded id store.", n.STORE_LABELS,
                  registry=registry),
            Gauge(n.STORE_BYTES, "Estimated bytes of the bounded id store (entries and "
                  "tombstones).", n.STORE_LABELS, registry=registry),
        )  # fmt: skip
    entries, size = _STORE_GAUGES[id(registry)]
    entries.labels(deployment, "predictor").set_function(lambda: len(store))
    size.labels(deployment, "predictor").set_function(lambda: store.estimated_bytes)
