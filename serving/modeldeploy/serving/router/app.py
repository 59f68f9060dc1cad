"""The local router: one aiohttp process in front of the stable, canary and shadow arms.

Per request (v1 ``:predict`` or v2 ``/infer``):

1. take the client's request id (body ``id``, then ``x-request-id``, as the predictor does;
   checked by the contract's rules, a malformed one is a 400) or make one, and send it to
   every arm in the ``x-request-id`` header, so every arm stores its prediction under the
   same id and feedback can reach it;
2. pick the primary arm by weight; for ``paired_share`` percent of canary requests also have
   stable score the same body; mirror every request to the shadow arm, if there is one;
3. answer with the primary arm's response as it came (plus ``x-modeldeploy-arm``); paired
   and mirrored calls run in the background and their responses are only remembered.

In score-both mode (``RouterConfig.score_both``, ``--score-both``; local mode's default) step 2
is instead: while the canary has weight, send every request to stable and the canary at
once, in an order drawn per request; the split only picks whose answer the client gets, as
soon as that one arrives (the other call finishes in the background, its answer the pair).
Both arms then serve the same requests at the same moments at every step (on one machine the
weight alone gives them different streams), and every label is a pair. It does not give each
arm's process the same share of the CPU: docs/demo.md, "The knobs", has the measurements.

``POST /v1/feedback`` forwards the label to every arm that scored the item and, the first
time an item scored by stable and a candidate is labelled, counts
``modeldeploy_paired_outcomes_total``. When the first label arrives for an item only one of
stable and canary scored, the router first has the other arm score the request's stored
input (pairing on label, within ``rescores_per_s`` and paced per arm; see :mod:`.pairing`),
so that label is paired too; over the budget it stays an unpaired label. ``GET/PUT /router/weights``
read and change the split; ``PUT /router/arms`` (loopback callers only) changes the arms
without a restart and answers once the requests in flight before the change have finished
(drained), so the caller can stop a removed arm's process without failing a request.
An unreachable arm gives a 502 (504 on timeout) that names it; the router stays up.

With a joiner (``RouterConfig.joiner_url``/``joiner_events_url``; local mode always) the
router is KServe's logger agent instead (:mod:`.logger`): every answered call is posted to
the joiner as inference-logger CloudEvents, ``POST /v1/feedback`` is passed to the joiner,
and the router keeps no inputs, re-scores nothing and counts no pairs (the joiner does),
so both modes have one feedback path and nothing is counted twice.

With ``RouterConfig.auth`` (:mod:`modeldeploy.serving.auth`) the router issues every
request id itself (signed; a client's ``id`` is ignored), feedback needs a label token and
an id this router issued, and everything under ``/router/`` needs the control token.

What clients see follows ``RouterConfig.response_detail`` (the arms' own
``--response-detail``): in the label view (the default) neither the serving arm
(``x-modeldeploy-arm``), nor the arms' feedback answers, nor an arm's name or address in
the router's own error bodies; ``expose_arm`` overrides that for the header and the
feedback answers. The arms' answers then name no version, so the router records the
versions of its arms table (``RouterConfig.versions``, ``PUT /router/arms``
``<role>_version``) for pairing, shadow comparison and the events it logs. Label refusals
are 401/403/404/429 and change no count but
``modeldeploy_router_feedback_total{outcome=<reason>}``.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modeldeploy.serving.auth import Auth, Denied
from modeldeploy.serving.contract.args import DEFAULT_RESPONSE_DETAIL
from modeldeploy.serving.contract.ids import (
    REQUEST_ID_HEADER,
    ROUTER_ORIGIN,
    IdIssuer,
    RequestIdError,
    item_ids,
    parse_item_id,
    parse_request_id,
    request_of,
)
from modeldeploy.serving.contract.names import (
    LABEL_SOURCES,
    ROUTER_FEEDBACK_OUTCOMES,
    paired_outcome,
)
from modeldeploy.serving.router.logger import EventLogger
from modeldeploy.serving.router.metrics import RouterMetrics
from modeldeploy.serving.router.pairing import (
    DEFAULT_INPUT_BYTES,
    DEFAULT_RESCORES_PER_S,
    ArmPrediction,
    InputBook,
    RescoreBudget,
    RescorePacer,
    ScoreBook,
    ScoredItem,
    StoredInput,
    pairs,
    rescore_role,
    shadow_agrees,
)
from modeldeploy.serving.router.responses import (
    BINARY_HEADER,
    json_part,
    predictions_in,
    request_id_in,
    router_guard,
    server_errors_counter,
)
from modeldeploy.serving.router.split import (
    CANARY,
    SHADOW,
    STABLE,
    Split,
    also_score_on_stable,
    arms_update,
    both_arms_order,
    choose_role,
    versions_update,
)

ARM_HEADER = "x-modeldeploy-arm"
FULL_DETAIL = "full"
FORWARDED_HEADERS = ("content-type", BINARY_HEADER)


@dataclass(frozen=True)
class RouterConfig:
    """Where the arms are and how to split; URLs are base URLs like ``http://127.0.0.1:8080``."""

    stable: str
    deployment: str
    canary: str | None = None
    shadow: str | None = None
    split: Split = field(default_factory=Split)
    timeout_s: float = 30.0
    feedback_wait_s: float = 10.0
    max_connections: int = 128
    book_capacity: int = 100_000
    book_ttl_s: float = 3600.0
    rescores_per_s: float = DEFAULT_RESCORES_PER_S
    """Budget of re-scores for pairing on label arrival; 0 turns it off."""
    input_bytes: int = DEFAULT_INPUT_BYTES
    """Memory for the inputs kept for pairing on label (oldest out first)."""
    seed: int | None = None
    auth: Auth | None = None
    expose_arm: bool | None = None
    """Show clients the serving arm and the arms' feedback answers; None: in the full view."""
    response_detail: str = DEFAULT_RESPONSE_DETAIL
    """The client's view (``contract.args.RESPONSE_DETAILS``): the arms answer in it (their
    own ``--response-detail``); the router's own words (errors, headers) follow it too."""
    versions: dict[str, str] = field(default_factory=dict)
    """Role -> the registry version that arm serves: what the router records and logs for
    its answers (a label-view answer names no version). An arm missing here is recorded
    with the version its answer states, if any."""
    score_both: bool = False
    """Both stable and the canary score every request while the canary has weight (the
    split picks whose answer the client gets); ``split.paired_share`` is then moot."""
    joiner_url: str | None = None
    """The joiner's label listener: labels go there, and the router neither pairs on label
    nor counts paired outcomes (the joiner does; :mod:`.logger`)."""
    joiner_events_url: str | None = None
    """The joiner's events listener: every answered call is posted there as KServe's
    logger agent would post it (:class:`~.logger.EventLogger`)."""

    def urls(self) -> dict[str, str]:
        arms = {STABLE: self.stable, CANARY: self.canary, SHADOW: self.shadow}
        return {role: url.rstrip("/") for role, url in arms.items() if url}


@dataclass(frozen=True)
class Upstream:
    """One arm's answer, or the error that stood in for it."""

    role: str
    status: int
    body: bytes
    headers: dict[str, str]
    predictions: list[ArmPrediction] = field(default_factory=list)
    answered_id: str | None = None


def _error_body(message: str, code: str) -> bytes:
    return json.dumps({"error": message, "code": code}).encode()


class Router:
    """The routing state (split, score book, pending background calls) and its handlers."""

    def __init__(self, config: RouterConfig, metrics: RouterMetrics | None = None) -> None:
        self.config = config
        self.urls = config.urls()
        self.split = config.split
        self.metrics = metrics or RouterMetrics(config.deployment)
        self.metrics.set_split(self.split.canary, self.split.paired_share)
        self.book = ScoreBook(config.book_capacity, config.book_ttl_s)
        self.inputs = InputBook(config.book_capacity, config.input_bytes, config.book_ttl_s)
        self.budget = RescoreBudget(config.rescores_per_s)
        self.pacer = RescorePacer.for_rate(config.rescores_per_s)
        self._rescoring: dict[str, asyncio.Task[None]] = {}
        self.rng = random.Random(config.seed)
        self.auth = config.auth
        self.ids = IdIssuer(config.auth.id_key, ROUTER_ORIGIN) if config.auth else None
        full = config.response_detail == FULL_DETAIL  # the arms' answers name them anyway
        self.expose_arm = config.expose_arm if config.expose_arm is not None else full
        self.versions = dict(config.versions)
        self._session: aiohttp.ClientSession | None = None
        self._pending: dict[str, set[asyncio.Task[Upstream]]] = {}
        self.joiner_url = config.joiner_url.rstrip("/") if config.joiner_url else None
        self.logger = (
            EventLogger(config.joiner_events_url, config.deployment, self.metrics.registry)
            if config.joiner_events_url
            else None
        )

    # --- application ----------------------------------------------------------------

    def application(self) -> web.Application:
        guard = router_guard(server_errors_counter(self.metrics.registry), self.config.deployment)
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[guard, self._guard])
        app[ROUTER_KEY] = self
        app.router.add_post(r"/v1/models/{name:[^/:]+}:predict", self._v1)
        app.router.add_post("/v2/models/{name}/infer", self._v2)
        app.router.add_post("/v2/models/{name}/versions/{version}/infer", self._v2)
        app.router.add_post("/v1/feedback", self.feedback)
        app.router.add_get("/router/weights", self.get_weights)
        app.router.add_put("/router/weights", self.put_weights)
        app.router.add_put("/router/arms", self.put_arms)
        app.router.add_get("/metrics", self.metrics_page)
        for path in ("/healthz", "/v2/health/live", "/v2/health/ready"):
            app.router.add_get(path, self.health)
        app.router.add_get("/{tail:.*}", self.passthrough)  # metadata/readiness: stable's
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.config.timeout_s)
        )

    async def _close(self, _: web.Application) -> None:
        tasks = [t for group in self._pending.values() for t in group]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # --- authentication -------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Credentials before any handler runs: labels on feedback, control on ``/router/``.

        A middleware, so every control endpoint under ``/router/`` (present or added later)
        is covered without its handler knowing.
        """
        denied: Denied | None = None
        if self.auth is not None:
            if request.path.startswith("/router/"):
                denied = self.auth.admit_control(request.headers)
            elif request.path == "/v1/feedback":
                denied = self.auth.admit_label(request.headers)
                if denied is not None:
                    self.metrics.feedback_outcome(denied.reason)
        if denied is not None:
            return web.json_response(
                {"error": denied.message, "code": denied.reason},
                status=denied.status,
                headers=denied.headers(),
            )
        return await handler(request)

    def _refuse_id(self, item_id: str) -> web.Response | None:
        """With auth, a label must name an id this router issued and has not outlived."""
        if self.ids is None:
            return None
        check = self.ids.check(item_id)
        if check.verdict != "ok" or check.origin != ROUTER_ORIGIN:
            return self._feedback_reply(
                404, "not_issued", f"this router issued no request id {item_id!r}"
            )
        if self.ids.age_s(check) >= self.book.ttl_s:
            return self._feedback_reply(
                404, "expired", f"request id {item_id!r} is older than {self.book.ttl_s:g}s"
            )
        return None

    # --- inference ------------------------------------------------------------------

    async def _v1(self, request: web.Request) -> web.Response:
        return await self.route(request, "v1")

    async def _v2(self, request: web.Request) -> web.Response:
        return await self.route(request, "v2")

    async def route(self, request: web.Request, protocol: str) -> web.Response:
        body = await request.read()
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        try:
            supplied = parse_request_id(request_id_in(body, request.headers))
        except RequestIdError as exc:
            return web.json_response({"error": str(exc), "code": "bad_input"}, status=400)
        # With auth the id is always the router's own, never the client's (module docstring).
        request_id = self.ids.issue() if self.ids else supplied or str(uuid.uuid4())
        headers[REQUEST_ID_HEADER] = request_id
        role = choose_role(self.split, self.rng) if CANARY in self.urls else STABLE
        call = self._caller(request.path_qs, body, headers, protocol, request_id)
        if self.config.score_both and CANARY in self.urls:
            calls = {
                r: call(r, "primary" if r == role else "paired")
                for r in both_arms_order(self.split, role, self.rng)
            }
            primary, stable = calls[role], calls.get(STABLE)
            if CANARY in calls and stable is not None:
                self._spawn(self._compare_paired(stable, calls[CANARY]), request_id)
        else:
            primary = call(role, "primary")
            stable = primary if role == STABLE else None
            if CANARY in self.urls and also_score_on_stable(self.split, role, self.rng):
                stable = call(STABLE, "paired")
                self._spawn(self._compare_paired(stable, primary), request_id)
        both = self.config.score_both and self.split.canary > 0
        if SHADOW in self.urls:
            shadow = call(SHADOW, "mirror")
            if stable is not None:
                self._spawn(self._compare_shadow(stable, shadow), request_id)
        pairs_here = self.budget.enabled and self.joiner_url is None
        if pairs_here and CANARY in self.urls and not both and (role == STABLE or stable is None):
            # One arm scores it: keep the input in case its label asks for the other.
            kept = {h: v for h, v in headers.items() if h != REQUEST_ID_HEADER}
            self.inputs.put(request_id, StoredInput(request.path_qs, body, kept, protocol))
        answer = await primary
        reply_headers = {REQUEST_ID_HEADER: request_id, **answer.headers}
        if self.expose_arm:
            reply_headers[ARM_HEADER] = role
        return web.Response(status=answer.status, body=answer.body, headers=reply_headers)

    def _caller(
        self, path: str, body: bytes, headers: dict[str, str], protocol: str, request_id: str
    ) -> Callable[[str, str], asyncio.Task[Upstream]]:
        def call(role: str, purpose: str) -> asyncio.Task[Upstream]:
            self.metrics.routed(role, purpose, protocol)
            coroutine = self._forward(role, path, body, headers, request_id)
            return self._spawn(coroutine, request_id)

        return call

    def _spawn(self, coroutine: Awaitable[Any], request_id: str) -> asyncio.Task[Any]:
        """Run ``coroutine`` as a task that feedback for ``request_id`` can wait on."""
        task = asyncio.ensure_future(coroutine)
        group = self._pending.setdefault(request_id, set())
        group.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            group.discard(finished)
            if not group and self._pending.get(request_id) is group:
                del self._pending[request_id]

        task.add_done_callback(done)
        return task

    async def _forward(
        self,
        role: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        request_id: str,
        record: bool = True,
    ) -> Upstream:
        url = self.urls[role] + path
        assert self._session is not None, "the router's application is not running"
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                data = await response.read()
                keep = {h: response.headers[h] for h in FORWARDED_HEADERS if h in response.headers}
                status = response.status
        except TimeoutError:
            self.metrics.upstream_error(role, "timeout")
            message = f"{self._upstream(role)} did not answer in {self.config.timeout_s}s"
            return Upstream(role, 504, _error_body(message, "upstream_timeout"), _JSON)
        except aiohttp.ClientError as exc:
            self.metrics.upstream_error(role, "connect")
            message = f"{self._upstream(role)} is unreachable" + (
                f": {exc}" if self.expose_arm else ""
            )
            return Upstream(role, 502, _error_body(message, "upstream_unreachable"), _JSON)
        if status >= 500:
            self.metrics.upstream_error(role, "status_5xx")
        predictions: list[ArmPrediction] = []
        answered_id = None
        if status == 200:
            parsed = json_part(data, keep) if BINARY_HEADER not in keep else None
            predictions, answered_id = predictions_in(parsed or {})
            version = self.versions.get(role)
            if version:  # the arms table, never the answer: a label view states none
                predictions = [replace(p, model_version=version) for p in predictions]
            if predictions and record:
                ids = item_ids(answered_id or request_id, len(predictions))
                self.book.record(ids, role, predictions)
                self._log(role, predictions, body, data, headers, request_id)
        return Upstream(role, status, data, keep, predictions, answered_id)

    def _upstream(self, role: str) -> str:
        """How the router's own error bodies name an arm: by role and URL only where
        clients may learn the arm (an error must not say which arm a request hit)."""
        return f"{role} upstream {self.urls[role]}" if self.expose_arm else "the model server"

    def _log(
        self,
        role: str,
        predictions: list[ArmPrediction],
        body: bytes,
        answer: bytes,
        headers: dict[str, str],
        request_id: str,
    ) -> None:
        """Hand one answered call to the joiner in the background (bounded; see .logger).

        Spawned under the request's id, so a label for it waits until the joiner has it.
        """
        if self.logger is None or not self.logger.admit():
            return
        assert self._session is not None
        content_type = headers.get("content-type", "application/json")
        version = predictions[0].model_version
        post = self.logger.post(self._session, role, version, body, answer, content_type)
        self._spawn(post, request_id)

    async def _compare_shadow(
        self, stable: asyncio.Task[Upstream], shadow: asyncio.Task[Upstream]
    ) -> None:
        stable_answer, shadow_answer = await asyncio.gather(stable, shadow)
        for mine, theirs in zip(stable_answer.predictions, shadow_answer.predictions, strict=False):
            agree = shadow_agrees({STABLE: mine, SHADOW: theirs})
            if agree is not None:
                self.metrics.shadow_compared(mine.model_version, theirs.model_version, agree)

    async def _compare_paired(
        self, stable: asyncio.Task[Upstream], canary: asyncio.Task[Upstream]
    ) -> None:
        """Count what each arm predicted for an input both scored (no label needed)."""
        stable_answer, canary_answer = await asyncio.gather(stable, canary)
        pairs = zip(stable_answer.predictions, canary_answer.predictions, strict=False)
        for mine, theirs in pairs:
            self.metrics.paired_prediction(
                mine.model_version, theirs.model_version, mine.label, theirs.label
            )

    # --- feedback -------------------------------------------------------------------

    async def feedback(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return self._feedback_reply(400, "bad_input", "body is not valid JSON")
        if not isinstance(body, dict):
            return self._feedback_reply(
                400, "bad_input", 'expected {"request_id": "...", "label": ...}'
            )
        try:
            item_id = parse_item_id(body.get("request_id"))
        except RequestIdError as exc:
            return self._feedback_reply(400, "bad_input", str(exc))
        if self.joiner_url is not None:
            return await self._feedback_at_joiner(item_id, body)
        refused = self._refuse_id(item_id)
        if refused is not None:
            return refused
        source = body.get("source", "feedback")
        if source not in LABEL_SOURCES:
            return self._feedback_reply(
                400, "bad_input", f'"source" must be one of {list(LABEL_SOURCES)}'
            )
        pending = list(self._pending.get(request_of(item_id), ()))
        if pending:  # a paired or mirrored call may still be on its way
            await asyncio.wait(pending, timeout=self.config.feedback_wait_s)
        found, item = self.book.lookup(item_id)
        if item is None:
            if found == "expired":
                return self._feedback_reply(
                    404,
                    "expired",
                    f"the router forgot request id {item_id!r} (TTL {self.book.ttl_s:g}s, "
                    f"capacity {self.book.capacity})",
                )
            return self._feedback_reply(
                404, "unknown_id", f"the router routed no request with id {item_id!r}"
            )
        if not item.labelled:
            await self._pair_on_label(item_id, item)
        roles = sorted(r for r in item.predictions if r in self.urls)  # removed arms: gone
        answers = await asyncio.gather(
            *(
                self._post_feedback(r, {**body, "request_id": item.arm_ids.get(r, item_id)})
                for r in roles
            )
        )
        arms = dict(zip(roles, answers, strict=True))
        if any(status == 400 for status, _ in answers):
            self.metrics.feedback_outcome("bad_input")
            refusal: dict[str, Any] = {"error": "an arm rejected the feedback", "code": "bad_input"}
            if self.expose_arm:
                refusal["arms"] = arms
            return web.json_response(refusal, status=400)
        paired = []
        counted = not item.labelled
        if counted:
            item.labelled = True
            for stable, candidate in pairs(item.predictions):
                outcome = paired_outcome(
                    stable.matches(body.get("label")), candidate.matches(body.get("label"))
                )
                self.metrics.paired(stable.model_version, candidate.model_version, source, outcome)
                paired.append(
                    {
                        "stable_version": stable.model_version,
                        "canary_version": candidate.model_version,
                        "outcome": outcome,
                    }
                )
        failed = any(status >= 500 or status == 0 for status, _ in answers)
        self.metrics.feedback_outcome(
            "upstream_error" if failed else ("forwarded" if counted else "duplicate")
        )
        reply: dict[str, Any] = {"request_id": item_id, "counted": counted}
        if self.expose_arm:  # which arm was right is what an attacker wants to know
            reply["paired"] = paired
            reply["arms"] = {r: {"status": s, "response": b} for r, (s, b) in arms.items()}
        return web.json_response(reply, status=502 if failed else 200)

    async def _feedback_at_joiner(self, item_id: str, body: dict[str, Any]) -> web.Response:
        """Pass a label to the joiner, which counts and pairs it, and answer as it did.

        The label waits (up to ``feedback_wait_s``) for the calls of its request still on
        their way, event posts included, so the joiner has seen what the arms answered.
        The client's credential never leaves the router: the joiner gets the control token.
        """
        assert self._session is not None and self.joiner_url is not None
        pending = list(self._pending.get(request_of(item_id), ()))
        if pending:
            await asyncio.wait(pending, timeout=self.config.feedback_wait_s)
        headers = self.auth.control_header() if self.auth is not None else None
        try:
            async with self._session.post(
                self.joiner_url + "/v1/feedback", json=body, headers=headers
            ) as response:
                status, text = response.status, await response.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            return self._feedback_reply(
                502, "upstream_error", f"the joiner {self.joiner_url} is unreachable: {exc}"
            )
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"error": text[:500], "code": "upstream_error"}
        if not isinstance(answer, dict):
            answer = {"error": str(answer)[:500], "code": "upstream_error"}
        if status == 200:
            outcome = "forwarded" if answer.get("counted") else "duplicate"
        else:
            outcome = str(answer.get("code", "upstream_error"))
            if outcome not in ROUTER_FEEDBACK_OUTCOMES:
                outcome = "upstream_error"
            if status >= 500:
                status = 502
        self.metrics.feedback_outcome(outcome)
        return web.json_response(answer, status=status)

    async def _pair_on_label(self, item_id: str, item: ScoredItem) -> None:
        """Have the arm that did not score ``item`` score its stored input, within budget.

        One re-score per request (it pairs every item of the request): a label that
        arrives while one is running waits for it rather than starting another, and a
        label over the budget, or for an input no longer kept, stays unpaired.
        """
        request_id = request_of(item_id)
        running = self._rescoring.get(request_id)
        if running is None:
            role = rescore_role(item.predictions, list(self.urls))
            stored = self.inputs.get(request_id) if role is not None else None
            if role is None or stored is None or not self.budget.take():
                return
            running = self._spawn(self._rescore(role, request_id, stored), request_id)
            self._rescoring[request_id] = running
            running.add_done_callback(lambda _: self._rescoring.pop(request_id, None))
        # Shielded: a client that hangs up must not cancel a re-score other labels wait on.
        await asyncio.wait([asyncio.shield(running)], timeout=self.config.feedback_wait_s)

    async def _rescore(self, role: str, request_id: str, stored: StoredInput) -> None:
        """Send a stored input to ``role`` (as the paired path does) and book its answers
        under the router's ids, noting the arm's own id where it chose another.

        Paced (:class:`RescorePacer`): a clump of labels must not become a burst on one arm."""
        delay = self.pacer.reserve(role)
        if delay > 0:
            await asyncio.sleep(delay)
        self.metrics.routed(role, "label", stored.protocol)
        headers = {**stored.headers, REQUEST_ID_HEADER: request_id}
        answer = await self._forward(role, stored.path, stored.body, headers, request_id, False)
        if not answer.predictions:
            return  # the arm failed (counted by _forward): the labels stay unpaired
        self.inputs.pop(request_id)
        ours = item_ids(request_id, len(answer.predictions))
        self.book.record(ours, role, answer.predictions)
        if answer.answered_id and answer.answered_id != request_id:
            theirs = item_ids(answer.answered_id, len(answer.predictions))
            for mine, arm_id in zip(ours, theirs, strict=True):
                scored = self.book.get(mine)
                if scored is not None:
                    scored.arm_ids[role] = arm_id

    async def _post_feedback(self, role: str, body: dict[str, Any]) -> tuple[int, Any]:
        assert self._session is not None
        # The arms get the router's own credential; the client's never leaves the router.
        headers = self.auth.control_header() if self.auth is not None else None
        url = self.urls[role] + "/v1/feedback"
        try:
            async with self._session.post(url, json=body, headers=headers) as response:
                text = await response.text()
                try:
                    return response.status, json.loads(text)
                except ValueError:
                    return response.status, text
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.metrics.upstream_error(
                role, "timeout" if isinstance(exc, TimeoutError) else "connect"
            )
            return 0, f"{role} upstream {self.urls[role]} is unreachable: {exc}"

    def _feedback_reply(self, status: int, code: str, message: str) -> web.Response:
        self.metrics.feedback_outcome(code)
        return web.json_response({"error": message, "code": code}, status=status)

    # --- admin, health, metrics -----------------------------------------------------

    async def get_weights(self, _: web.Request) -> web.Response:
        return web.json_response({**self.split.as_dict(), "arms": self.urls})

    async def put_weights(self, request: web.Request) -> web.Response:
        try:
            self.split = self.split.updated(json.loads(await request.read()))
        except ValueError as exc:  # JSONDecodeError is a ValueError too
            return web.json_response({"error": str(exc), "code": "bad_input"}, status=400)
        if self.split.canary > 0 and CANARY not in self.urls:
            self.split = Split(0.0, self.split.paired_share)
            return web.json_response(
                {"error": "no canary arm is configured", "code": "bad_input"}, status=400
            )
        self.metrics.set_split(self.split.canary, self.split.paired_share)
        return web.json_response({**self.split.as_dict(), "arms": self.urls})

    async def put_arms(self, request: web.Request) -> web.Response:
        """Swap arms in place: new requests go to the new arms at once; the answer waits
        (up to the upstream timeout) for the requests already in flight, old arms included."""
        if request.remote not in ("127.0.0.1", "::1"):
            return web.json_response(
                {"error": "arms can only be changed from this machine", "code": "forbidden"},
                status=403,
            )
        try:
            update = json.loads(await request.read())
            urls, split = arms_update(self.urls, self.split, update)
            versions = versions_update(self.versions, self.urls, urls, update)
        except ValueError as exc:
            return web.json_response({"error": str(exc), "code": "bad_input"}, status=400)
        in_flight = [task for group in self._pending.values() for task in group]
        # The split first, so a request routed from now on cannot pick a removed canary;
        # one turn of the loop lets calls already scheduled read the URLs they were meant for.
        self.split = split
        await asyncio.sleep(0)
        self.urls, self.split, self.versions = urls, split, versions
        self.metrics.set_split(self.split.canary, self.split.paired_share)
        still: set[asyncio.Task[Any]] = set()
        if in_flight:
            _, still = await asyncio.wait(in_flight, timeout=self.config.timeout_s)
        body = {**self.split.as_dict(), "arms": self.urls, "drained": not still}
        return web.json_response(body)

    async def metrics_page(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", **({"arms": self.urls} if self.expose_arm else {})}
        )

    async def passthrough(self, request: web.Request) -> web.Response:
        assert self._session is not None
        url = self.urls[STABLE] + request.path_qs
        try:
            async with self._session.get(url) as response:
                keep = {h: response.headers[h] for h in FORWARDED_HEADERS if h in response.headers}
                return web.Response(
                    status=response.status, body=await response.read(), headers=keep
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.metrics.upstream_error(
                STABLE, "timeout" if isinstance(exc, TimeoutError) else "connect"
            )
            message = f"{self._upstream(STABLE)} is unreachable" + (
                f": {exc}" if self.expose_arm else ""
            )
            body = _error_body(message, "upstream_unreachable")
            return web.Response(status=502, body=body, headers=_JSON)


_JSON = {"content-type": "application/json"}
ROUTER_KEY = web.AppKey("router", Router)


async def serve(config: RouterConfig, host: str, port: int) -> web.AppRunner:
    """Start the router on ``host:port`` in the running loop; ``runner.cleanup()`` stops it."""
    runner = web.AppRunner(Router(config).application(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
