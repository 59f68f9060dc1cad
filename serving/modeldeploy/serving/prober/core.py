"""The golden-set prober: labelled probes sent to both arms, counted as paired evidence.

Every probe is one golden example sent (v1 ``:predict``) to the stable and the canary URL
at once; in Kubernetes these are the KServe tag-routed revision URLs, locally the two
predictor processes. Because the truth is known, each probe records, for each arm that
answered, ``modeldeploy_labelled_predictions_total{source="probe"}`` and, when both
answered, ``modeldeploy_paired_outcomes_total{source="probe"}`` (docs/metrics.md).

Each example is used at most once per rollout, in the order and on the slots of
:mod:`.schedule`, so a restarted prober never counts an example again; when the set is
used up the prober stops, says so in its log and sets ``modeldeploy_prober_state
{state="exhausted"}``. Probes are paced at ``rate_per_s`` with at most one in flight, so a
slow arm slows the prober rather than piling up requests; ``max_probes`` bounds a run.

An arm that is not serving yet (a canary revision still loading on KServe, a predictor
process restarting) does not use up examples: when an arm gives no prediction, the prober
asks that arm's v1 readiness endpoint, and if it is not ready the probe is discarded (the
other arm's answer too, so nothing is counted twice or unpaired), the example is kept for
the next try and ``modeldeploy_prober_deferred_total`` counts it. Only an arm that says it
is ready and still fails spends the example, as an error: whether to defer is decided by
readiness, never by the answer to one example, so no example can be retried until it
comes out right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

from modeldeploy.serving.metrics import collectors, paired_outcomes_counter
from modeldeploy.serving.prober.golden import GoldenSet
from modeldeploy.serving.prober.schedule import DEFAULT_MARGIN_S, Schedule, order, rollout_key
from modeldeploy.serving.router.pairing import ArmPrediction, paired_outcome
from modeldeploy.serving.router.responses import predictions_in

log = logging.getLogger(__name__)

ROLES = ("stable", "canary")
STATES = (
    "probing",
    "waiting_for_arm",
    "exhausted",
    "no_golden_set",
    "registry_error",
    "stopped",
)
DEFER_RETRY_S = 2.0
"""How long a prober waits after a probe deferred for an arm that is not ready."""


@dataclass(frozen=True)
class ProberConfig:
    """One rollout's probing.

    ``since`` is the rollout's start (epoch seconds, the canary's start time in the
    status): with it a restarted prober resumes after the slots already due (never
    re-sending an example); without it the schedule starts when the prober does, which
    is only right for a prober that runs once (by hand, in a test). ``key`` names the
    rollout (``schedule.rollout_key``) and fixes the order of the examples.
    """

    deployment: str
    stable_url: str
    canary_url: str
    model_name: str
    rate_per_s: float = 1.0
    timeout_s: float = 10.0
    max_probes: int | None = None
    since: float | None = None
    key: str = ""
    margin_s: float = DEFAULT_MARGIN_S
    stable_version: str = ""
    canary_version: str = ""
    """The versions the arms serve, counted for their answers: a label-view answer
    (``--response-detail label``, the default) names none. Empty: what the answer says."""

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if self.max_probes is not None and self.max_probes < 0:
            raise ValueError("max_probes must not be negative")

    def url(self, role: str) -> str:
        base = self.stable_url if role == "stable" else self.canary_url
        return f"{base.rstrip('/')}/v1/models/{self.model_name}:predict"

    def ready_url(self, role: str) -> str:
        """KServe's v1 model readiness: 200 with ``{"ready": true}`` once it serves."""
        base = self.stable_url if role == "stable" else self.canary_url
        return f"{base.rstrip('/')}/v1/models/{self.model_name}"


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found: each arm's prediction (None when it failed) and the truth."""

    text: str
    label: int | str
    predictions: dict[str, ArmPrediction | None]


@dataclass(frozen=True)
class _Collectors:
    labelled: Counter
    paired: Counter
    probes: Counter
    errors: Counter
    deferred: Counter
    state: Gauge
    remaining: Gauge


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, _Collectors] = (
    weakref.WeakKeyDictionary()
)


def share_collectors(registry: CollectorRegistry, labelled: Counter, paired: Counter) -> None:
    """Count probes in the contract counters another part of the process registered in
    ``registry`` (the joiner's, when it runs the prober: one /metrics, one process start
    time), instead of registering them a second time."""
    if registry not in _BY_REGISTRY:
        _BY_REGISTRY[registry] = _new_collectors(registry, labelled, paired)


def _collectors(registry: CollectorRegistry) -> _Collectors:
    """The prober's series in ``registry``, registered once however many deployments."""
    found = _BY_REGISTRY.get(registry)
    if found is None:
        # process_start_time_seconds: the operator sees a restarted prober (counters reset).
        ProcessCollector(registry=registry)
        found = _new_collectors(
            registry, collectors(registry).labelled_predictions, paired_outcomes_counter(registry)
        )
        _BY_REGISTRY[registry] = found
    return found


def _new_collectors(registry: CollectorRegistry, labelled: Counter, paired: Counter) -> _Collectors:
    return _Collectors(
        labelled=labelled,
        paired=paired,
        probes=Counter(
            "modeldeploy_prober_probes",
            "Probes sent (each to both arms).",
            ("deployment",),
            registry=registry,
        ),
        errors=Counter(
            "modeldeploy_prober_errors",
            "Probe calls that got no usable prediction, by arm.",
            ("deployment", "role"),
            registry=registry,
        ),
        deferred=Counter(
            "modeldeploy_prober_deferred",
            "Probes discarded because an arm was not ready (its example kept for later), by"
            " the arm that was not ready.",
            ("deployment", "role"),
            registry=registry,
        ),
        state=Gauge(
            "modeldeploy_prober_state",
            "1 for the state the deployment's prober is in: probing, exhausted (every"
            " golden example used once), waiting_for_arm (an arm is not ready: examples"
            " kept), no_golden_set, registry_error, stopped.",
            ("deployment", "state"),
            registry=registry,
        ),
        remaining=Gauge(
            "modeldeploy_prober_remaining",
            "Golden examples this rollout has not used yet (each is used at most once).",
            ("deployment",),
            registry=registry,
        ),
    )


class ProberMetrics:
    """The prober's series for one deployment; its own registry unless one is given."""

    def __init__(self, deployment: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.deployment = deployment
        c = _collectors(self.registry)
        self.labelled, self.paired, self.probes, self.errors = (
            c.labelled, c.paired, c.probes, c.errors
        )  # fmt: skip
        self.deferred = c.deferred
        self._state, self._remaining = c.state, c.remaining
        self.probes.labels(deployment)
        for role in ROLES:
            self.errors.labels(deployment, role)
            self.deferred.labels(deployment, role)

    def set_state(self, state: str, remaining: int | None = None) -> None:
        for name in STATES:
            self._state.labels(self.deployment, name).set(1.0 if name == state else 0.0)
        if remaining is not None:
            self._remaining.labels(self.deployment).set(remaining)

    def record(self, result: ProbeResult) -> None:
        self.probes.labels(self.deployment).inc()
        for role, prediction in result.predictions.items():
            if prediction is None:
                self.errors.labels(self.deployment, role).inc()
                continue
            correct = "true" if prediction.matches(result.label) else "false"
            self.labelled.labels(
                self.deployment, prediction.model_version, role, "probe", correct
            ).inc()
        stable, canary = result.predictions.get("stable"), result.predictions.get("canary")
        if stable is not None and canary is not None:
            outcome = paired_outcome(stable.matches(result.label), canary.matches(result.label))
            self.paired.labels(
                self.deployment, stable.model_version, canary.model_version, "probe", outcome
            ).inc()


class Prober:
    """Send each golden example at most once, until stopped, exhausted or ``max_probes``.

    Usable from a task or a thread (:class:`ProberThread`). ``clock`` is wall-clock time
    (the schedule's slots are in epoch seconds, like ``since``).
    """

    def __init__(
        self,
        config: ProberConfig,
        golden: GoldenSet,
        metrics: ProberMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.golden = golden
        self.metrics = metrics or ProberMetrics(config.deployment)
        self.clock = clock
        self.sent = 0
        self.exhausted = False
        self._waiting = False
        key = config.key or rollout_key(config.deployment, "", "", "")
        self._order = order(key, len(golden.texts))
        since = config.since if config.since is not None else clock()
        self.schedule = Schedule(since, config.rate_per_s, len(golden.texts))
        # With a durable start, resume after every slot already due (a restart); a
        # prober with no start of its own begins at the first slot.
        self.next_slot = (
            self.schedule.first_unused(clock(), config.margin_s) if config.since is not None else 0
        )
        self.metrics.set_state("probing", self.schedule.size - self.next_slot)

    def _next_example(self) -> tuple[str, int | str]:
        index = self._order[self.next_slot]
        return self.golden.texts[index], self.golden.labels[index]

    def _spend(self) -> None:
        """The example's slot is spent whatever the probe found (unless an arm was not ready)."""
        self.next_slot += 1
        self.metrics.set_state("probing", self.schedule.size - self.next_slot)

    async def probe_once(self, session: aiohttp.ClientSession) -> ProbeResult | None:
        """Probe both arms with the next example; None when deferred (an arm not ready)."""
        text, label = self._next_example()
        probe_id = f"probe-{uuid.uuid4()}"
        answers = await asyncio.gather(*(self._ask(session, r, text, probe_id) for r in ROLES))
        failed = [role for role, answer in zip(ROLES, answers, strict=True) if answer is None]
        if failed:
            ready = await asyncio.gather(*(self._ready(session, role) for role in failed))
            waiting = [role for role, ok in zip(failed, ready, strict=True) if not ok]
            if waiting:
                self._defer(waiting)
                return None
        self._spend()
        result = ProbeResult(text, label, dict(zip(ROLES, answers, strict=True)))
        self.metrics.record(result)
        self.sent += 1
        return result

    def _defer(self, roles: list[str]) -> None:
        for role in roles:
            self.metrics.deferred.labels(self.config.deployment, role).inc()
        self.metrics.set_state("waiting_for_arm", self.schedule.size - self.next_slot)
        if not self._waiting:
            log.info(
                "prober for %s: %s not ready; probes wait (no golden example is used meanwhile)",
                self.config.deployment,
                " and ".join(roles),
            )
        self._waiting = True

    async def _ready(self, session: aiohttp.ClientSession, role: str) -> bool:
        try:
            async with session.get(self.config.ready_url(role)) as response:
                if response.status != 200:
                    return False
                body = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return False
        return isinstance(body, dict) and body.get("ready") is True

    async def _ask(
        self, session: aiohttp.ClientSession, role: str, text: str, probe_id: str
    ) -> ArmPrediction | None:
        body: dict[str, Any] = {"instances": [text], "id": probe_id}
        try:
            async with session.post(self.config.url(role), json=body) as response:
                if response.status != 200:
                    return None
                found, _ = predictions_in(await response.json())
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None
        if len(found) != 1:
            return None
        version = self.config.stable_version if role == "stable" else self.config.canary_version
        return replace(found[0], model_version=version) if version else found[0]

    def _mark_exhausted(self) -> None:
        self.exhausted = True
        self.metrics.set_state("exhausted", 0)
        log.warning(
            "prober for %s: all %d golden examples used once in this rollout; probing stops"
            " (a repeated example would be counted as new evidence, which it is not)",
            self.config.deployment,
            self.schedule.size,
        )

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Probe on the schedule until ``stop`` is set, the set is used up or the bound."""
        stop = stop or asyncio.Event()
        interval = 1.0 / self.config.rate_per_s
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        connector = aiohttp.TCPConnector(limit=4, keepalive_timeout=30)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            earliest = self.clock()
            while not stop.is_set():
                if self.config.max_probes is not None and self.sent >= self.config.max_probes:
                    break
                if self.schedule.exhausted(self.next_slot):
                    self._mark_exhausted()
                    break
                # Never before the slot is due (what makes restarts safe), and never faster
                # than the rate after a slow probe (no burst to catch up).
                wait = max(self.schedule.due(self.next_slot), earliest) - self.clock()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=wait)
                    continue  # re-check stop and the time
                started = self.clock()
                if await self.probe_once(session) is None:
                    earliest = started + max(interval, DEFER_RETRY_S)
                    continue
                if self._waiting:
                    self._waiting = False
                    log.info("prober for %s: both arms ready again", self.config.deployment)
                earliest = started + interval
        return self.sent


class ProberThread:
    """Run a :class:`Prober` on its own event loop in a daemon thread (for sync callers)."""

    def __init__(self, prober: Prober) -> None:
        self.prober = prober
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="prober", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def body() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await self.prober.run(self._stop)

        try:
            self._loop.run_until_complete(body())
        except BaseException as exc:  # surfaced by stop(), never lost silently
            self.error = exc
        finally:
            self._ready.set()
            self._loop.close()

    def start(self) -> ProberThread:
        self._thread.start()
        self._ready.wait()
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """Ask the prober to stop after its current probe; return how many it sent."""
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the prober did not stop in time")
        if self.error is not None:
            raise RuntimeError("the prober failed") from self.error
        return self.prober.sent

    def is_alive(self) -> bool:
        return self._thread.is_alive()
