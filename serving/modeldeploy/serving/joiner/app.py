"""The joiner's two HTTP listeners (aiohttp).

- **events** (``--events-port``; the chart's NetworkPolicy admits only predictor pods):
  ``POST /v1/events?deployment=&role=&version=`` takes KServe's inference-logger
  CloudEvents (:mod:`.events`) and answers 202 whatever it did with them (the agent only
  logs the status); what happened is counted in ``modeldeploy_joiner_events_total``.
- **api** (``--port``): ``POST /v1/feedback`` (the label contract of the router and the
  predictors: ``{"request_id", "label", "source"?}``, a label credential, 401/403/429 before
  the body is read, 400/404 for a bad or unknown label, and a repeat is acknowledged with
  ``counted: false``); ``POST /v1/ids`` hands a label-credential holder a signed id to send
  with a Triton request (Triton echoes the client's id and signs nothing); ``/metrics``;
  ``/healthz``.

Answers to labels say only whether the label counted, never what an arm predicted.

Sampled pairing (``JoinerConfig.pair_share``, :class:`~.pairing.PairSampler`): a random share
of the recorded, unlabelled responses is re-scored on the other arm in the background,
after the event is answered, so nothing waits on it (on KServe no client waits on the
joiner at all: the agent posts its events after the answer). Each pair is counted in
``modeldeploy_paired_predictions_total`` and booked as the other arm's prediction, so a
label that arrives later is paired without a second re-score.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modeldeploy.serving.auth import Auth
from modeldeploy.serving.contract.ids import (
    IdIssuer,
    RequestIdError,
    item_ids,
    parse_item_id,
    request_of,
)
from modeldeploy.serving.contract.names import LABEL_SOURCES
from modeldeploy.serving.feedback import FeedbackError
from modeldeploy.serving.joiner.book import JOINER_ORIGIN, JoinBook, JoinedItem
from modeldeploy.serving.joiner.events import (
    PREDICTOR_COMPONENT,
    Arm,
    EventError,
    Scored,
    parse_event,
    protocol_of,
    scored,
)
from modeldeploy.serving.joiner.journal import GROUP_DELAY_S, Journal
from modeldeploy.serving.joiner.metrics import JoinerMetrics
from modeldeploy.serving.joiner.pairing import (
    DEFAULT_PAIR_RATE,
    DEFAULT_PAIR_SHARE,
    ArmsFile,
    PairSampler,
    Plan,
    Rescorer,
    is_rescore,
    plan,
)
from modeldeploy.serving.router.pairing import RescoreBudget, RescorePacer, StoredInput
from modeldeploy.serving.router.responses import json_too_deep

MAX_EVENT_BYTES = 16 * 1024 * 1024
MAX_LABEL_BYTES = 64 * 1024


@dataclass
class JoinerConfig:
    """Everything a joiner process needs; built by ``__main__`` from argv."""

    auth: Auth | None
    book: JoinBook
    arms: ArmsFile
    rescores_per_s: float = 20.0
    rescore_timeout_s: float = 10.0
    pair_share: float = DEFAULT_PAIR_SHARE
    """Share of unlabelled responses re-scored on the other arm for the drift checks."""
    pair_rate: float = DEFAULT_PAIR_RATE
    """At most this many of those re-scores per second."""
    pair_rng: random.Random | None = None
    """The sampler's random draws (tests seed it)."""


class Joiner:
    """Ingest, labels and pairing over one :class:`JoinBook`."""

    def __init__(self, config: JoinerConfig, metrics: JoinerMetrics | None = None) -> None:
        self.config = config
        self.auth = config.auth
        self.book = config.book
        self.metrics = metrics or JoinerMetrics()
        self.metrics.watch_store(lambda: len(self.book.items),
                                 lambda: self.book.items.estimated_bytes)  # fmt: skip
        self.sampler = PairSampler(config.pair_share, config.pair_rate, config.pair_rng)
        self.metrics.watch_pair_share(lambda: self.sampler.probability)
        paced = config.rescores_per_s + (config.pair_rate if self.sampler.enabled else 0.0)
        self.rescorer = Rescorer(
            RescoreBudget(config.rescores_per_s),
            config.rescore_timeout_s,
            RescorePacer.for_rate(paced),
            # The platform's credential: the arm answers in the full view, which names its
            # version, so a re-score that reached another revision is refused (pairing.py).
            config.auth.control_header() if config.auth else None,
        )
        self.minter = IdIssuer(config.auth.id_key, JOINER_ORIGIN) if config.auth else None
        self._rescoring: dict[str, asyncio.Future[None]] = {}
        self._sampled: set[asyncio.Future[None]] = set()
        self._flusher: asyncio.Future[None] | None = None
        if self.book.journal is not None:
            self.book.journal.on_error = self.metrics.state_file_error

    # --- applications -------------------------------------------------------------------

    def events_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_EVENT_BYTES)
        app.router.add_post("/v1/events", self.ingest)
        app.router.add_get("/healthz", self.health)
        return app

    def api_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_LABEL_BYTES, middlewares=[self._guard])
        app.router.add_post("/v1/feedback", self.feedback)
        app.router.add_post("/v1/ids", self.issue_id)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/healthz", self.health)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        await self.rescorer.open()
        if self.book.journal is not None:
            self._flusher = asyncio.ensure_future(self._flush_journal(self.book.journal))

    async def _close(self, _: web.Application) -> None:
        for task in list(self._sampled):
            task.cancel()
        await asyncio.gather(*self._sampled, return_exceptions=True)
        await self.rescorer.close()
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self.book.journal is not None:
            self.book.journal.close()  # commits what waits: a clean stop loses nothing

    @staticmethod
    async def _flush_journal(journal: Journal) -> None:
        """Commit the journal's waiting writes every ``GROUP_DELAY_S`` (journal.py)."""
        while True:
            await asyncio.sleep(GROUP_DELAY_S)
            journal.flush()

    # --- ingest -------------------------------------------------------------------------

    async def ingest(self, request: web.Request) -> web.Response:
        outcome = self._ingest(request.query_string, dict(request.headers), await request.read())
        self.metrics.event(outcome)
        return web.json_response({"outcome": outcome}, status=202)

    def _ingest(self, query: str, headers: dict[str, str], body: bytes) -> str:
        try:
            arm = Arm.from_query(query)
            event = parse_event(headers, body)
        except EventError:
            return "bad_event"
        if event.component and event.component != PREDICTOR_COMPONENT:
            return "ignored"
        if event.kind == "request":
            protocol = protocol_of(event.body)
            if protocol is None:
                return "ignored"  # binary tensors: routed, never paired
            kept = {"content-type": event.content_type or "application/json"}
            self.book.record_input(event.link, StoredInput("", event.body, kept, protocol))
            return "input"
        try:
            answer = scored(event.body, arm.version)
        except EventError:
            return "ignored"
        outcome = self.book.record(arm, answer, event.link, event.namespace)
        if outcome == "recorded" and not is_rescore(event.ce_id) and self.sampler.draw():
            self._sample(arm, answer)
        return outcome

    # --- sampled pairing (the drift checks) ---------------------------------------------

    def _sample(self, arm: Arm, answer: Scored) -> None:
        """Start a background re-score of a drawn response on the other arm (or count why
        not); the event is answered without waiting for it."""
        if arm.role not in ("stable", "canary"):
            return  # a shadow is mirrored every request already
        request_id = answer.request_id
        item = self.book.items.get(answer.item_ids[0]) if answer.item_ids else None
        if item is None:
            return
        if request_id in self._rescoring:
            self.metrics.pair_sample("busy")
            return
        chosen = plan(self.book, item, self.config.arms.get(item.deployment, item.namespace))
        if chosen.skip:
            if chosen.skip != "not_needed":
                self.metrics.pair_sample(chosen.skip)
            return
        task = asyncio.ensure_future(self._pair_sampled(request_id, arm, answer, chosen))
        self._rescoring[request_id] = task
        self._sampled.add(task)
        task.add_done_callback(lambda _: self._rescoring.pop(request_id, None))
        task.add_done_callback(self._sampled.discard)

    async def _pair_sampled(
        self, request_id: str, served: Arm, answer: Scored, chosen: Plan
    ) -> None:
        result = await self.rescorer.score(chosen, self.sampler.budget)
        if isinstance(result, str):
            self.metrics.pair_sample(result)
            return
        ours = tuple(answer.item_ids[: len(result.predictions)])
        other = Arm(served.deployment, chosen.role, chosen.version)
        self.book.put_predictions(
            other, replace(result, request_id=request_id, item_ids=ours), None
        )
        for mine, theirs in zip(answer.predictions, result.predictions, strict=False):
            stable, canary = (mine, theirs) if served.role == "stable" else (theirs, mine)
            versions = (stable.model_version, canary.model_version)
            self.metrics.paired_prediction(served.deployment, *versions, stable.label, canary.label)
        self.metrics.pair_sample("paired")

    # --- labels -------------------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The label credential before the body is read: an anonymous post costs nothing."""
        if self.auth is not None and request.method == "POST":
            denied = self.auth.admit_label(request.headers)
            if denied is not None:
                self.metrics.feedback(denied.reason)
                return web.json_response(
                    {"error": denied.message, "code": denied.reason},
                    status=denied.status,
                    headers=denied.headers(),
                )
        return await handler(request)

    async def feedback(self, request: web.Request) -> web.Response:
        try:
            body, item_id, item = self._admit(await request.read())
            true_index = self.book.classes.resolve(item.deployment, body.get("label"))
            if true_index is None:
                raise FeedbackError(400, "bad_input", f"label {body.get('label')!r} names no "
                                    f"class of {item.deployment!r}")  # fmt: skip
        except FeedbackError as exc:
            self.metrics.feedback(exc.reason)
            return web.json_response({"error": exc.message, "code": exc.reason}, status=exc.status)
        source = body.get("source", "feedback")
        if item.labelled:
            self.metrics.feedback("duplicate")
            return web.json_response({"request_id": item_id, "counted": False, "source": source})
        self.book.mark_labelled(item_id, item)  # before any await: a repeat is a duplicate
        await self._pair(item_id, item)
        self.metrics.counted(item.deployment, source, self.book.count(item, true_index))
        self.metrics.feedback("counted")
        return web.json_response({"request_id": item_id, "counted": True, "source": source})

    def _admit(self, raw: bytes) -> tuple[dict[str, Any], str, JoinedItem]:
        """The label post's body, item id and item; raises :class:`FeedbackError`."""
        try:
            if json_too_deep(raw):
                raise ValueError("too deep")
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FeedbackError(400, "bad_input", "body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise FeedbackError(400, "bad_input", 'expected {"request_id": ..., "label": ...}')
        try:
            item_id = parse_item_id(body.get("request_id"))
        except RequestIdError as exc:
            raise FeedbackError(400, "bad_input", str(exc)) from exc
        refused = self.book.id_verdict(item_id)
        if refused is not None:
            raise FeedbackError(404, refused, f"the platform issued no live request id {item_id!r}")
        if body.get("source", "feedback") not in LABEL_SOURCES:
            raise FeedbackError(400, "bad_input", f'"source" must be one of {list(LABEL_SOURCES)}')
        status, item = self.book.lookup(item_id)
        if item is None:
            if status == "expired":
                raise FeedbackError(404, "expired", f"request id {item_id!r} has expired here")
            raise FeedbackError(404, "unknown_id", f"no arm was logged serving {item_id!r}")
        return body, item_id, item

    async def _pair(self, item_id: str, item: JoinedItem) -> None:
        """Pairing on label (:mod:`.pairing`): the other arm scores the stored input.

        One re-score per request (it pairs every item of it): a label for another item of
        the same request that arrives meanwhile waits for it instead of starting another.
        """
        request_id = request_of(item_id)
        running = self._rescoring.get(request_id)
        if running is None:
            chosen = plan(self.book, item, self.config.arms.get(item.deployment, item.namespace))
            if chosen.skip:
                if chosen.skip != "not_needed":
                    self.metrics.rescore(chosen.skip)
                return
            running = asyncio.ensure_future(self._rescore(request_id, item.deployment, chosen))
            self._rescoring[request_id] = running
            running.add_done_callback(lambda _: self._rescoring.pop(request_id, None))
        # Shielded: a client that hangs up must not cancel a re-score other labels wait on.
        await asyncio.shield(running)

    async def _rescore(self, request_id: str, deployment: str, chosen: Plan) -> None:
        result = await self.rescorer.score(chosen)
        if isinstance(result, str):
            self.metrics.rescore(result)
            return
        # Booked under the labelled request's ids: the arm answered under an id of its own.
        ours = tuple(item_ids(request_id, len(result.predictions)))
        arm = Arm(deployment, chosen.role, chosen.version)
        self.book.put_predictions(arm, replace(result, request_id=request_id, item_ids=ours), None)
        self.metrics.rescore("paired")

    async def issue_id(self, _: web.Request) -> web.Response:
        if self.minter is None:
            return web.json_response(
                {"error": "this joiner has no credentials: no signed ids", "code": "bad_input"},
                status=400,
            )
        return web.json_response({"request_id": self.minter.issue()})

    # --- metrics, health ----------------------------------------------------------------

    async def metrics_page(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def health(self, _: web.Request) -> web.Response:
        journal = self.book.journal
        return web.json_response({
            "status": "ok",
            "arms_file_error": self.config.arms.error,
            "state_file": str(journal.path) if journal is not None else None,
            "state_file_errors": journal.errors if journal is not None else 0,
        })  # fmt: skip
