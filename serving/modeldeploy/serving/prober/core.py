"""The golden-set prober: labelled probes sent to both arms, counted as paired evidence.

Every probe is one golden example sent (v1 ``:predict``) to the stable and the canary URL
at once; in Kubernetes these are the KServe tag-routed revision URLs, locally the two
predictor processes. Because the truth is known, each probe records, for each arm that
answered, ``modeldeploy_labelled_predictions_total{source="probe"}`` and, when both
answered, ``modeldeploy_paired_outcomes_total{source="probe"}`` (docs/metrics.md).

Probes are paced at ``rate_per_s`` with at most one in flight, so a slow arm slows the
prober rather than piling up requests; ``max_probes`` bounds a run. Examples are drawn in
a shuffled cycle, so every example is used before any repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from modeldeploy.serving.metrics import collectors, paired_outcomes_counter
from modeldeploy.serving.prober.golden import GoldenSet
from modeldeploy.serving.router.pairing import ArmPrediction, paired_outcome
from modeldeploy.serving.router.responses import predictions_in

ROLES = ("stable", "canary")


@dataclass(frozen=True)
class ProberConfig:
    deployment: str
    stable_url: str
    canary_url: str
    model_name: str
    rate_per_s: float = 1.0
    timeout_s: float = 10.0
    max_probes: int | None = None
    seed: int | None = None
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


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found: each arm's prediction (None when it failed) and the truth."""

    text: str
    label: int | str
    predictions: dict[str, ArmPrediction | None]


class ProberMetrics:
    """The prober's series; its own registry unless one is given."""

    def __init__(self, deployment: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.deployment = deployment
        self.labelled = collectors(self.registry).labelled_predictions
        self.paired = paired_outcomes_counter(self.registry)
        self.probes = Counter(
            "modeldeploy_prober_probes",
            "Probes sent (each to both arms).",
            ("deployment",),
            registry=self.registry,
        )
        self.errors = Counter(
            "modeldeploy_prober_errors",
            "Probe calls that got no usable prediction, by arm.",
            ("deployment", "role"),
            registry=self.registry,
        )
        self.probes.labels(deployment)
        for role in ROLES:
            self.errors.labels(deployment, role)

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
    """Send probes until stopped or ``max_probes`` are done; usable from a task or a thread."""

    def __init__(
        self, config: ProberConfig, golden: GoldenSet, metrics: ProberMetrics | None = None
    ) -> None:
        self.config = config
        self.golden = golden
        self.metrics = metrics or ProberMetrics(config.deployment)
        self.sent = 0
        self._rng = random.Random(config.seed)
        self._order: list[int] = []

    def _next_example(self) -> tuple[str, int | str]:
        if not self._order:
            self._order = list(range(len(self.golden.texts)))
            self._rng.shuffle(self._order)
        index = self._order.pop()
        return self.golden.texts[index], self.golden.labels[index]

    async def probe_once(self, session: aiohttp.ClientSession) -> ProbeResult:
        text, label = self._next_example()
        probe_id = f"probe-{uuid.uuid4()}"
        answers = await asyncio.gather(*(self._ask(session, r, text, probe_id) for r in ROLES))
        result = ProbeResult(text, label, dict(zip(ROLES, answers, strict=True)))
        self.metrics.record(result)
        self.sent += 1
        return result

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

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Probe at the configured rate until ``stop`` is set or the bound is reached."""
        stop = stop or asyncio.Event()
        interval = 1.0 / self.config.rate_per_s
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        connector = aiohttp.TCPConnector(limit=4, keepalive_timeout=30)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            next_at = time.monotonic()
            while not stop.is_set():
                if self.config.max_probes is not None and self.sent >= self.config.max_probes:
                    break
                await self.probe_once(session)
                # Pace from the schedule, but never burst to catch up after a slow probe.
                next_at = max(next_at + interval, time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=next_at - time.monotonic())
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
