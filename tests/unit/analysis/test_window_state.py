"""The window state kept in the resource status: exact round trip, bounded size."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from modeldeploy.operator.metrics.accumulate import MAX_SOURCES, WindowState
from modeldeploy.operator.metrics.snapshot import ArmCounters, Snapshot, SourceCounters

EDGES = [*np.round(0.001 * 1.05 ** np.arange(226), 6).tolist(), float("inf")]


def busy_arm(rng: np.random.Generator) -> ArmCounters:
    """100k requests through the contract-like buckets: a realistic histogram."""
    latencies = np.sort(0.02 * np.exp(0.5 * rng.standard_normal(100_000)))
    cumulative = np.searchsorted(latencies, EDGES, side="right").astype(float)
    requests = {"ok": 100_000.0, "error": 12.0, "bad_input": 3.0}
    buckets = dict(zip(EDGES, cumulative, strict=True))
    return ArmCounters(85_000, 100_000, requests, 0, buckets, cpu_seconds=412.25)


def snapshot(sources: int, at: float, seed: int = 0) -> Snapshot:
    rng = np.random.default_rng(seed)
    return Snapshot(
        {
            f"http://10.0.0.{i}:8080/metrics": SourceCounters(
                busy_arm(rng), busy_arm(rng), (80.0, 12.0, 4.0, 4.0), 1.7e9 + i
            )
            for i in range(sources)
        },
        at,
    )


def test_the_state_survives_json_exactly() -> None:
    state = WindowState.start("2", 1, snapshot(3, 1.7e9 + 100)).advance(
        snapshot(3, 1.7e9 + 200, seed=0)
    )
    assert WindowState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_cpu_seconds_survive_the_status_round_trip() -> None:
    """Cost per 1k inferences reads the window's CPU time, so the stored state must keep it."""
    first, later = snapshot(1, 1.7e9 + 100), snapshot(1, 1.7e9 + 200)
    source = next(iter(later.sources))
    counters = later.sources[source]
    assert counters.stable is not None
    grown = replace(counters.stable, cpu_seconds=430.75)
    later = Snapshot({source: replace(counters, stable=grown)}, later.taken_at)
    state = WindowState.start("2", 1, first).advance(later)
    assert state.stable is not None and state.stable.cpu_seconds == 430.75 - 412.25
    stored = json.loads(json.dumps(state.to_dict()))
    assert WindowState.from_dict(stored) == state


def test_the_state_stays_small_with_the_most_sources_it_keeps() -> None:
    state = WindowState.start("2", 0, snapshot(MAX_SOURCES, 1.7e9 + 100))
    state = state.advance(snapshot(MAX_SOURCES, 1.7e9 + 200))
    size = len(json.dumps(state.to_dict()))
    assert size < 2_000 * MAX_SOURCES, size  # about 1.5 kB per source with full histograms


def test_sources_that_vanished_are_dropped_beyond_the_bound_but_present_ones_never() -> None:
    many = snapshot(MAX_SOURCES + 4, 1.7e9 + 100)
    state = WindowState.start("2", 0, many)
    assert len(state.last.sources) == MAX_SOURCES + 4  # all present: all kept
    one = Snapshot(dict(list(many.sources.items())[:1]), 1.7e9 + 200)
    assert len(state.advance(one).last.sources) == MAX_SOURCES


def test_an_older_or_unreadable_state_starts_again() -> None:
    assert WindowState.from_dict({"version": "2", "step": 0, "snapshot": {}}) is None


def test_a_source_first_read_late_counts_whole_if_it_started_inside_the_step() -> None:
    """A prober restarted during a step and first scraped a tick later: everything it counted
    lies inside the step, so all of it counts; one that ran before the step began and was
    missed by the first reads (a scrape gap) becomes a baseline instead."""
    base = 1.7e9
    first = snapshot(1, base + 100)
    state = WindowState.start("2", 1, first).advance(snapshot(1, base + 200))
    counted = state.paired

    def with_new_source(start: float) -> WindowState:
        later = snapshot(1, base + 300)
        sources = dict(later.sources)
        sources["http://10.0.0.9:9100/metrics"] = SourceCounters(
            None, None, (5.0, 1.0, 1.0, 3.0), start
        )
        return state.advance(Snapshot(sources, later.taken_at))

    inside = with_new_source(base + 150)  # after the step began (100), before the last read
    assert inside.paired is not None and counted is not None
    assert sum(inside.paired) - sum(counted) == 10.0
    before = with_new_source(base + 50)  # ran before the step began: only a baseline
    assert before.paired == counted


def test_a_state_kept_before_latency_could_span_steps_reads_as_one_step_of_latency() -> None:
    """Status written by an older operator has no ``latencyStep``: its latency is the step's."""
    state = WindowState.start("2", 1, snapshot(1, 1.7e9 + 100)).next_step(2)
    data = json.loads(json.dumps(state.to_dict()))
    del data["latencyStep"]
    assert WindowState.from_dict(data) == state and state.latency_step == 2


def test_latency_that_spans_steps_keeps_the_step_it_began_at() -> None:
    start = WindowState.start("2", 0, snapshot(1, 1.7e9 + 100))
    grown = start.advance(snapshot(1, 1.7e9 + 200, seed=1))
    assert grown.latency[1] is not None and grown.latency[1].buckets
    spanning = grown.next_step(1, latency_spans_steps=True)
    assert spanning.latency == grown.latency and spanning.latency_step == 0
    assert spanning.step == 1 and spanning.step_started_at == 1.7e9 + 200
    restarted = grown.next_step(1)
    assert restarted.latency == (None, None) and restarted.latency_step == 1
    assert WindowState.from_dict(json.loads(json.dumps(spanning.to_dict()))) == spanning
