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

With authentication (:class:`~modeldeploy.serving.auth.Auth`, both token files given) a
label needs ``Authorization: Bearer <label token>`` (401 without, 403 wrong, 429 over the
rate), and the predictor chooses the id a prediction is stored under
(:meth:`PredictionStore.assign_id`): the router's signed id when it is fresh and new here
(so labels posted to the router reach this arm), else one it issues itself, stamped with
its role. A label must then name an id the platform signed (else 404 ``not_issued``) and,
if a predictor issued it, this predictor's role (else 409 ``wrong_arm``). The feedback
answer then says only whether the label counted, not what was predicted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modeldeploy.serving.auth import Auth
from modeldeploy.serving.contract import names as contract_names
from modeldeploy.serving.contract.ids import (
    REQUEST_ID_HEADER,
    ROUTER_ORIGIN,
    IdIssuer,
    RequestIdError,
    label_index,
    parse_item_id,
)
from modeldeploy.serving.contract.store import (
    DEFAULT_STORE_CAPACITY,
    DEFAULT_STORE_TTL_S,
    BoundedStore,
)
from modeldeploy.serving.metrics import ArmMetrics
from modeldeploy.serving.per_registry import PerRegistry

Lookup = Literal["found", "unknown", "expired", "duplicate"]
SOURCES = contract_names.LABEL_SOURCES
ROUTER_ID_WINDOW_S = 120.0
"""How old a router-issued id may be when its request reaches a predictor (above the
router's per-call timeout); an older one is a replay, and the predictor issues its own."""


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
        self.ids: IdIssuer | None = None

    def issue_ids(self, issuer: IdIssuer) -> None:
        """From now on this store's predictor issues the ids (see :meth:`assign_id`)."""
        self.ids = issuer

    def assign_id(self, supplied: str, headers: Mapping[str, str] | None) -> str:
        """The id a new prediction is stored and answered under.

        Without an issuer: the request's own id, as before. With one: the router's
        ``x-request-id`` if this platform signed it as the router, recently, and this
        store never held it (so a replayed id is never a key twice); else a fresh id of
        this predictor's own. A client's id is never used.
        """
        if self.ids is None:
            return supplied
        offered = (headers or {}).get(REQUEST_ID_HEADER, "")
        check = self.ids.check(offered) if offered else None
        if (
            check is not None
            and check.verdict == "ok"
            and check.origin == ROUTER_ORIGIN
            and "/" not in offered
            and 0 <= self.ids.age_s(check) <= ROUTER_ID_WINDOW_S
            and all(self._store.lookup(k)[0] == "unknown" for k in (offered, offered + "/0"))
        ):
            return offered
        return self.ids.issue()

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
        self._store.put(key, StoredPrediction(label_index), keep=_labelled)

    def take(self, key: str) -> tuple[Lookup, StoredPrediction | None]:
        """Look ``key`` up for labelling; marks it labelled so a repeat is a duplicate."""
        status, entry = self._store.lookup(key)
        if entry is None:
            return status, None
        if entry.labelled:
            return "duplicate", entry
        entry.labelled = True
        return "found", entry


def _labelled(entry: StoredPrediction) -> bool:
    return entry.labelled


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


def refuse_unissued(request_id: str, store: PredictionStore) -> None:
    """With issued ids: refuse an id nobody here signed, another arm's, or a too old one."""
    if store.ids is None:
        return
    check = store.ids.check(request_id)
    if check.verdict != "ok":
        raise FeedbackError(404, "not_issued", f"the platform issued no request id {request_id!r}")
    if check.origin not in (ROUTER_ORIGIN, store.ids.origin):
        raise FeedbackError(
            409,
            "wrong_arm",
            f"request id {request_id!r} was served by the {check.origin} arm; post its label "
            "there (or to the router)",
        )
    if store.ids.age_s(check) >= store.ttl_s:
        raise FeedbackError(
            404, "expired", f"request id {request_id!r} is older than {store.ttl_s:g}s"
        )


def apply_feedback(
    body: object,
    store: PredictionStore,
    labels: Sequence[str],
    metrics: ArmMetrics,
    detail: bool = True,
) -> dict[str, Any]:
    """Join one feedback body to its prediction and count it (the route's whole logic).

    ``detail``: the answer may say what was predicted, whether it was right and by which
    version (``--response-detail full``); never with authentication."""
    try:
        if not isinstance(body, dict):
            raise FeedbackError(400, "bad_input", 'expected {"request_id": ..., "label": ...}')
        try:
            request_id = parse_item_id(body.get("request_id"))
        except RequestIdError as exc:
            raise FeedbackError(400, "bad_input", str(exc)) from exc
        refuse_unissued(request_id, store)
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
    if store.ids is not None or not detail:  # what was predicted, and by whom: not shown
        return {"request_id": request_id, "counted": counted, "source": source}
    return {
        "request_id": request_id,
        "predicted": labels[entry.label_index],
        "label": labels[true_index],
        "correct": correct,
        "counted": counted,
        "source": source,
        **{k: v for k, v in metrics.base_labels.items() if k == "model_version"},
    }


def feedback_router(
    store: PredictionStore,
    labels: Sequence[str],
    metrics: ArmMetrics,
    auth: Auth | None = None,
    detail: bool = True,
) -> Any:
    """A FastAPI router with ``POST /v1/feedback``, mounted on the kserve app."""
    import orjson
    from fastapi import APIRouter, Request, Response

    def reply(status: int, content: dict[str, Any]) -> Response:
        return Response(orjson.dumps(content), status_code=status, media_type="application/json")

    async def post_feedback(request: Request) -> Response:
        denied = auth.admit_label(request.headers) if auth is not None else None
        if denied is not None:  # before the body is read: an anonymous post costs nothing
            metrics.reject_feedback(denied.reason)
            return Response(
                orjson.dumps({"error": denied.message, "code": denied.reason}),
                status_code=denied.status,
                media_type="application/json",
                headers=denied.headers(),
            )
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            metrics.reject_feedback("bad_input")
            return reply(400, {"error": "body is not valid JSON", "code": "bad_input"})
        try:
            return reply(200, apply_feedback(body, store, labels, metrics, detail))
        except FeedbackError as exc:
            return reply(exc.status, {"error": exc.message, "code": exc.reason})

    # With postponed annotations FastAPI would look ``Request`` up in this module's
    # globals (it is imported lazily here), so give it the classes themselves.
    post_feedback.__annotations__ = {"request": Request, "return": Response}
    router = APIRouter()
    router.add_api_route("/v1/feedback", post_feedback, methods=["POST"], response_model=None)
    return router


def _store_gauges(registry: Any) -> tuple[Any, Any]:
    from prometheus_client import Gauge

    n = contract_names
    return (
        Gauge(n.STORE_ENTRIES, "Entries in the bounded id store.", n.STORE_LABELS,
              registry=registry),
        Gauge(n.STORE_BYTES, "Estimated bytes of the bounded id store (entries and "
              "tombstones).", n.STORE_LABELS, registry=registry),
    )  # fmt: skip


_STORE_GAUGES = PerRegistry(_store_gauges)


def export_store_size(store: PredictionStore, deployment: str, registry: Any = None) -> None:
    """Gauges of the store's entries and estimated bytes, read at scrape time (no cost per
    request), so a soak can show the store stays flat. Registered once per registry; a
    later store (a second build in one process) takes the series over."""
    from prometheus_client import REGISTRY

    entries, size = _STORE_GAUGES(registry or REGISTRY)
    entries.labels(deployment, "predictor").set_function(lambda: len(store))
    size.labels(deployment, "predictor").set_function(lambda: store.estimated_bytes)
