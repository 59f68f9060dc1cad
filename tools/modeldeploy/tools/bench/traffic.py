"""Simulated traffic and labels for the rollout benchmark, generated per tick in bulk.

Per tick of ``dt`` seconds: Poisson requests split by the platform's weight, latency as
multinomial bucket counts, labels as a Poisson stream whose items each carry both models'
correctness (4 McNemar cells: both right, stable only, canary only, both wrong), and a
delay before each label reaches the router (``DELAYS``). What reaches which counter follows
what the router does (``serving/router/app.py``): every canary request is also scored by
stable (paired share 1.0), and with ``pair_every_label`` a label for a stable-served
request has the router score the stored input on the canary too, so every label is a pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from modeldeploy.tools.bench.sim_world import (
    SimPlatform,
    lognormal_bucket_probs,
    sample_latency,
    warmup_split,
)

Z99 = 2.3263478740408408
LATENCY_MEDIAN_S = 0.020
ERROR_RATE = 0.001
BURST_SECONDS = 900  # "bursty" labels are released in batches every 15 minutes
# Kinds of label delay: max delay (s) for a right and a wrong answer, uniform in between.
DELAYS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),  # labelled within the tick
    "independent": (600.0, 600.0),  # up to 10 minutes, whatever the answer
    "informative": (600.0, 120.0),  # wrong answers are reported within 2 minutes
    "bursty": (0.0, 0.0),  # see BURST_SECONDS
}
CANARY, STABLE = 0, 1  # the arm that served a labelled request (index in the pending book)
CELL_CORRECT = {  # which of the 4 cells count as right for the stable / the canary
    "stable": np.array([1, 1, 0, 0], dtype=bool),
    "canary": np.array([1, 0, 1, 0], dtype=bool),
}


@dataclass(frozen=True)
class Truth:
    """How the canary really differs from stable, and the traffic it is judged under."""

    accuracy: float = 0.85
    drop: float = 0.0  # canary accuracy = accuracy - drop
    disagreement: float = 0.04  # inputs where the two disagree beyond the drop
    sigma: float = 0.5  # lognormal sigma of both arms' latency
    canary_speed: float = 1.0  # canary median = stable median x this
    canary_p99: float = 1.0  # canary P99 / stable P99, with the same median (tail only)
    request_rate: float = 100.0
    label_rate: float = 10.0
    delay: str = "none"
    restart_at: float | None = None  # seconds after the canary starts: its pod restarts
    cold_requests: int = 0  # the canary's first requests are 10x slower
    pair_every_label: bool = False

    def cells(self) -> np.ndarray:
        """P(both right, stable only, canary only, both wrong) of one labelled input."""
        p, q = self.accuracy, self.accuracy - self.drop
        pi = min(abs(p - q) + self.disagreement, 2.0 - p - q)
        stable_only, canary_only = (pi + p - q) / 2, (pi - p + q) / 2
        both = p - stable_only
        return np.array([both, stable_only, canary_only, 1.0 - both - stable_only - canary_only])

    def canary_sigma(self) -> float:
        return self.sigma + math.log(self.canary_p99) / Z99


def delay_offsets(max_delay: float, dt: float) -> np.ndarray:
    """P(a label arrives k ticks after its request's tick), request time uniform in a tick."""
    if max_delay <= 0:
        return np.array([1.0])
    rng = np.random.default_rng(12345)
    arrive = rng.uniform(0, dt, 200_000) + rng.uniform(0, max_delay, 200_000)
    counts = np.bincount((arrive // dt).astype(int))
    return counts / counts.sum()


@dataclass
class Traffic:
    """One rollout's traffic generator and the labels still on their way."""

    truth: Truth
    dt: float
    rng: np.random.Generator
    tick: int = 0
    requests: dict[str, int] = field(default_factory=lambda: {"stable": 0, "canary": 0})
    _pending: dict[int, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        right, wrong = DELAYS[self.truth.delay]
        self.offsets = {True: delay_offsets(right, self.dt), False: delay_offsets(wrong, self.dt)}
        self.cells = self.truth.cells()
        sigma = self.truth.sigma
        self.stable_probs = lognormal_bucket_probs(LATENCY_MEDIAN_S, sigma)
        self.canary_probs = lognormal_bucket_probs(
            LATENCY_MEDIAN_S * self.truth.canary_speed, self.truth.canary_sigma()
        )
        self.cold_probs = lognormal_bucket_probs(  # a cold canary: 10x slower
            10 * LATENCY_MEDIAN_S * self.truth.canary_speed, self.truth.canary_sigma()
        )

    def advance(self, world: SimPlatform, since_start: float) -> None:
        """``dt`` seconds of traffic and label arrivals, written into the pods' counters."""
        t = self.truth
        due = t.restart_at is not None and since_start - self.dt < t.restart_at <= since_start
        if due and "canary" in world.pods:
            world.restart("canary")
            self._drop_pending(CANARY)  # its feedback store died with it
        w = world.canary_weight()
        n = int(self.rng.poisson(t.request_rate * self.dt))
        n_canary = int(self.rng.binomial(n, w)) if w > 0 else 0
        # paired share 1.0: stable serves its own share and scores every canary request too
        self._serve(world, "stable", n)
        self._serve(world, "canary", n_canary)
        self._label(w)
        self._arrive(world)
        self.tick += 1

    def _serve(self, world: SimPlatform, role: str, n: int) -> None:
        pod = world.pods.get(role)
        if pod is None or n <= 0:
            return
        canary = role == "canary"
        probs = self.canary_probs if canary else self.stable_probs
        _, slow, normal = warmup_split(pod.seen, n, self.truth.cold_requests if canary else 0)
        counts, mean = sample_latency(self.rng, normal, probs)
        if slow:
            slow_counts, _ = sample_latency(self.rng, slow, self.cold_probs)
            counts = counts + slow_counts
        if counts.sum():
            pod.add_latency(counts, mean)
        errors = int(self.rng.binomial(n, ERROR_RATE))
        pod.ok.inc(n - errors)
        if errors:
            pod.error.inc(errors)
        pod.seen += n
        self.requests[role] += n

    def _label(self, w: float) -> None:
        """Labels for this tick's requests, each scheduled to arrive after its delay."""
        k = int(self.rng.poisson(self.truth.label_rate * self.dt))
        k_canary = int(self.rng.binomial(k, w)) if w > 0 else 0
        for arm, count in ((CANARY, k_canary), (STABLE, k - k_canary)):
            if count <= 0:
                continue
            served = "canary" if arm == CANARY else "stable"
            for cell, m in enumerate(self.rng.multinomial(count, self.cells)):
                if not m:
                    continue
                offsets = self.offsets[bool(CELL_CORRECT[served][cell])]
                for k_off, c in enumerate(self.rng.multinomial(m, offsets)):
                    if c:
                        due = self._due(self.tick + k_off)
                        book = self._pending.setdefault(due, np.zeros((2, 4), dtype=np.int64))
                        book[arm, cell] += c

    def _due(self, tick: int) -> int:
        if self.truth.delay != "bursty":
            return tick
        every = max(1, round(BURST_SECONDS / self.dt))
        return (tick // every + 1) * every - 1

    def _drop_pending(self, arm: int) -> None:
        for book in self._pending.values():
            book[arm] = 0

    def _arrive(self, world: SimPlatform) -> None:
        book = self._pending.pop(self.tick, None)
        stable, canary = world.pods.get("stable"), world.pods.get("canary")
        if book is None or stable is None or canary is None:
            return
        s_ok, c_ok = CELL_CORRECT["stable"], CELL_CORRECT["canary"]
        served_canary, served_stable = book[CANARY], book[STABLE]
        # canary-served: both arms scored it (paired share 1.0), the router pairs it
        canary.add_labels(int(served_canary[c_ok].sum()), int(served_canary[~c_ok].sum()))
        stable.add_labels(int(served_canary[s_ok].sum()), int(served_canary[~s_ok].sum()))
        world.router.add_pairs(stable.version, canary.version, served_canary)
        stable.add_labels(int(served_stable[s_ok].sum()), int(served_stable[~s_ok].sum()))
        if self.truth.pair_every_label and served_stable.sum():
            # the router scores the stored input on the canary when the label arrives
            self._serve(world, "canary", int(served_stable.sum()))
            canary.add_labels(int(served_stable[c_ok].sum()), int(served_stable[~c_ok].sum()))
            world.router.add_pairs(stable.version, canary.version, served_stable)
