"""A rollout's analysis window as running totals: the state kept in ``status.metricsBaseline``.

Subtracting a window's first snapshot from its last is wrong as soon as a process restarts
in between (it subtracts one process's counts from another's, or drops everything before
the restart). Instead every read adds the increase since the *previous* read, source by
source (``SourceCounters.minus``: Prometheus' ``increase`` rule, plus the process start
time), to running totals. The state is therefore:

* ``totals``: labels, requests, errors, NaN outputs, paired outcomes, the label-free
  drift counters (``ArmCounters.drift``) and the CPU and GPU seconds (cost per 1k) since
  this canary version's window began.
  Accuracy, errors and drift do not depend on the traffic share, so they are one
  sequential experiment per canary version, carried across steps.
* ``latency``: the histograms since the current *step* began (latency depends on load),
  or, where both arms serve the same requests at every step (local mode's score-both
  router), since the window began: there the load on each arm does not follow the weight,
  so one experiment spans the steps (``latency_step`` says where it began).
* ``last``: the last raw snapshot per source, with its start time: the next read's
  reference. Sources that vanished are kept (a process that comes back must not be
  counted twice) up to ``MAX_SOURCES`` in all, most recently seen first.

It is written to the resource status on every tick, so it is compact: whole counts as
ints, histograms as per-bucket counts from the first to the last non-empty bucket against
a shared table of bucket edges.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.metrics.base import InvalidMetrics
from modeldeploy.operator.metrics.snapshot import (
    RESTART_SLACK_S,
    SECONDS_KEYS,
    ArmCounters,
    Paired,
    Snapshot,
    SourceCounters,
    add_arms,
    add_paired,
    observations_of,
    seconds_from_dict,
)

MAX_SOURCES = 8  # raw snapshots kept per window (present sources are always kept)
FORMAT = 2  # the layout of the status dict; older baselines start a fresh window


@dataclass(frozen=True)
class WindowState:
    """Running totals of one canary version's window (see the module docs)."""

    version: str
    step: int
    last: Snapshot
    stable: ArmCounters | None = None  # counts only, since the version's window began
    canary: ArmCounters | None = None
    paired: Paired | None = None
    latency: tuple[ArmCounters | None, ArmCounters | None] = (None, None)  # this step
    started_at: float = 0.0
    step_started_at: float = 0.0
    latency_step: int = 0  # the step the latency histograms began at

    @classmethod
    def start(cls, version: str, step: int, snapshot: Snapshot) -> WindowState:
        """A window that begins at ``snapshot``: nothing counted yet."""
        return cls(
            version,
            step,
            _bounded(snapshot, None),
            started_at=snapshot.taken_at,
            step_started_at=snapshot.taken_at,
            latency_step=step,
        )

    def advance(self, now: Snapshot) -> WindowState:
        """Add what every source counted since the last read."""
        stable: ArmCounters | None = None
        canary: ArmCounters | None = None
        paired: Paired | None = None
        for name, counters in now.sources.items():
            old = self.last.sources.get(name)
            # A source never read in this window counts from zero since its process
            # started. If that was after the step began, all of it lies inside the step
            # (a prober or predictor (re)started during the step and first scraped a tick
            # later); if it ran before the step began (a scrape gap at the start), part of
            # it is from before: take it as the baseline and count from here.
            started_before = counters.start is not None and (
                counters.start < self.step_started_at - RESTART_SLACK_S
            )
            if old is None and started_before:
                continue
            increase = counters.minus(old)
            stable = add_arms(stable, increase.stable)
            canary = add_arms(canary, increase.canary)
            paired = add_paired(paired, increase.paired)
        lat_s, lat_c = self.latency
        return replace(
            self,
            last=_bounded(now, self.last),
            stable=add_arms(self.stable, stable.counts() if stable else None),
            canary=add_arms(self.canary, canary.counts() if canary else None),
            paired=add_paired(self.paired, paired),
            latency=(
                add_arms(lat_s, stable.latency_only() if stable and stable.buckets else None),
                add_arms(lat_c, canary.latency_only() if canary and canary.buckets else None),
            ),
        )

    def next_step(self, step: int, latency_spans_steps: bool = False) -> WindowState:
        """A new traffic step: accuracy and errors carry on, latency starts again.

        ``latency_spans_steps``: both arms serve the same requests whatever the weight, so
        the latency experiment carries on too (see the module docs).
        """
        if step == self.step:
            return self
        if latency_spans_steps:
            return replace(self, step=step, step_started_at=self.last.taken_at)
        return replace(
            self,
            step=step,
            latency=(None, None),
            step_started_at=self.last.taken_at,
            latency_step=step,
        )

    def observations(self) -> Observations:
        """The window's observations so far; raises ``MetricsError`` subclasses."""
        observations = observations_of(
            self.stable,
            self.canary,
            self.paired,
            self.latency,
            sources=len(self.last.sources),
        )
        return replace(observations, step=self.latency_step)

    def to_dict(self) -> dict[str, Any]:
        edges: list[list[str]] = []
        return {
            "format": FORMAT,
            "version": self.version,
            "step": self.step,
            "since": self.started_at,
            "stepSince": self.step_started_at,
            "latencyStep": self.latency_step,
            "totals": {
                "stable": _encode(self.stable, edges),
                "canary": _encode(self.canary, edges),
                "paired": _ints(self.paired),
            },
            "latency": [_encode(arm, edges) for arm in self.latency],
            "last": {
                "t": self.last.taken_at,
                "sources": {
                    name: {
                        "start": s.start,
                        "stable": _encode(s.stable, edges),
                        "canary": _encode(s.canary, edges),
                        "paired": _ints(s.paired),
                    }
                    for name, s in self.last.sources.items()
                },
            },
            "edges": edges,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowState | None:
        """The state kept in the status; None when it is absent or of an older layout."""
        if not data or data.get("format") != FORMAT:
            return None
        try:
            edges = [_parsed_row(tuple(row)) for row in data.get("edges", [])]
            totals = data.get("totals") or {}
            last = data.get("last") or {}
            sources = {
                str(name): SourceCounters(
                    _decode(s.get("stable"), edges),
                    _decode(s.get("canary"), edges),
                    _paired(s.get("paired")),
                    float(s["start"]) if s.get("start") is not None else None,
                )
                for name, s in (last.get("sources") or {}).items()
            }
            lat = data.get("latency") or [None, None]
            return cls(
                version=str(data["version"]),
                step=int(data["step"]),
                last=Snapshot(sources, float(last.get("t", 0.0))),
                stable=_decode(totals.get("stable"), edges),
                canary=_decode(totals.get("canary"), edges),
                paired=_paired(totals.get("paired")),
                latency=(_decode(lat[0], edges), _decode(lat[1], edges)),
                started_at=float(data.get("since", 0.0)),
                step_started_at=float(data.get("stepSince", 0.0)),
                latency_step=int(data.get("latencyStep", data["step"])),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InvalidMetrics(f"the kept metrics window is unreadable: {exc}") from exc


def _bounded(now: Snapshot, previous: Snapshot | None) -> Snapshot:
    """``now``'s sources, then those it lacks from ``previous``, at most ``MAX_SOURCES``."""
    sources = dict(now.sources)
    if previous is not None:
        for name, counters in previous.sources.items():
            if len(sources) >= MAX_SOURCES:
                break
            sources.setdefault(name, counters)
    return Snapshot(sources, now.taken_at)


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def _ints(paired: Paired | None) -> list[float | int] | None:
    return [_num(v) for v in paired] if paired is not None else None


def _paired(values: Sequence[Any] | None) -> Paired | None:
    if values is None:
        return None
    a, b, c, d = (float(v) for v in values)
    return a, b, c, d


def _le_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def _parse_le(text: str) -> float:
    return math.inf if text == "+Inf" else float(text)


@lru_cache(maxsize=64)
def _edge_row(bounds: tuple[float, ...]) -> list[str]:
    """The edge table row of a histogram's bounds (the same few rows on every tick)."""
    return [_le_text(b) for b in bounds]


@lru_cache(maxsize=64)
def _parsed_row(row: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(_parse_le(e) for e in row)


def _encode(arm: ArmCounters | None, edges: list[list[str]]) -> dict[str, Any] | None:
    """Compact arm: counts, and the histogram as (edge-table row, sparse bucket counts)."""
    if arm is None:
        return None
    data: dict[str, Any] = {
        "c": _num(arm.correct),
        "n": _num(arm.labelled),
        "r": {k: _num(v) for k, v in arm.requests.items()},
        "nan": _num(arm.nan_outputs),
    }
    if arm.buckets:
        bounds = sorted(arm.buckets)
        row = _edge_row(tuple(bounds))
        if row not in edges:
            edges.append(list(row))  # a copy: the status owns it, the cache keeps its own
        cumulative = [arm.buckets[b] for b in bounds]
        deltas = [v - p for v, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
        nonzero = [i for i, c in enumerate(deltas) if c]
        first = nonzero[0] if nonzero else 0
        last = nonzero[-1] + 1 if nonzero else 0
        data["h"] = [edges.index(row), first, [_num(c) for c in deltas[first:last]]]
    if arm.drift:  # every key, zeros too: histogram keys must match between the arms
        data["d"] = {k: _num(v) for k, v in sorted(arm.drift.items())}
    for key, name in SECONDS_KEYS.items():  # absent: the arm exports none (cost unknown)
        if (seconds := getattr(arm, name)) is not None:
            data[key] = _num(seconds)
    return data


def _decode(data: Mapping[str, Any] | None, edges: Sequence[Sequence[float]]) -> ArmCounters | None:
    if data is None:
        return None
    buckets: dict[float, float] = {}
    if data.get("h"):
        row, first, counts = data["h"]
        bounds, first = edges[int(row)], int(first)
        if first < 0:
            raise ValueError(f"a histogram starts at bucket {first}")
        lead = min(first, len(bounds))
        # running sums of the stored counts; zeros before them, their total after them
        running = list(itertools.accumulate(float(c) for c in counts[: len(bounds) - lead]))
        tail = running[-1] if running else 0.0
        values = [0.0] * lead + running + [tail] * (len(bounds) - lead - len(running))
        buckets = dict(zip(bounds, values, strict=True))
    return ArmCounters(
        correct=float(data.get("c", 0.0)),
        labelled=float(data.get("n", 0.0)),
        requests={str(k): float(v) for k, v in (data.get("r") or {}).items()},
        nan_outputs=float(data.get("nan", 0.0)),
        buckets=buckets,
        drift={str(k): float(v) for k, v in (data.get("d") or {}).items()},
        **seconds_from_dict(data),
    )
