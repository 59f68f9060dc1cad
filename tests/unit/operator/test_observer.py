"""observer.MetricsWindows: the window state lives in the status; no data is no verdict.

The provider is the real scrape provider with its fetch (the I/O boundary) faked: the test
writes the /metrics text the serving processes would expose, one process per URL, each
with the ``process_start_time_seconds`` prometheus_client exports.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from modeldeploy.operator.analysis.assess import assess
from modeldeploy.operator.api.status import CanaryState, Status, VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.metrics.accumulate import MAX_SOURCES
from modeldeploy.operator.metrics.scrape import ScrapeProvider
from modeldeploy.operator.observer import MetricsWindows
from modeldeploy.operator.platforms.base import Target

SPEC = parse_spec({"model": {"name": "m"}, "rollout": {"steps": [50, 100]}})
TARGET = Target("d", "ml", SPEC)
STATUS = Status(
    phase="Progressing", stable=VersionRef("1"), canary=CanaryState(version="2", step=0)
)
URL = "http://pod/metrics"


class Process:
    """One serving process: cumulative counters per arm since it started."""

    def __init__(self, start: float | None = 1000.0) -> None:
        self.start = start
        self.counts = {"stable": [0, 0, 0], "canary": [0, 0, 0]}  # correct, total, slow
        self.broken = ""

    def add(self, arm: str, correct: int, total: int, slow: int = 0) -> None:
        row = self.counts[arm]
        row[0], row[1], row[2] = row[0] + correct, row[1] + total, row[2] + slow

    def restart(self, at: float) -> None:
        self.start = at
        self.counts = {"stable": [0, 0, 0], "canary": [0, 0, 0]}

    def text(self) -> str:
        lines = []
        if self.start is not None:
            lines.append(f"process_start_time_seconds {self.start}")
        for arm, version in (("stable", "1"), ("canary", "2")):
            correct, total, slow = self.counts[arm]
            labels = f'deployment="d",model_version="{version}",role="{arm}"'
            wrong = self.broken if arm == "canary" and self.broken else total - correct
            lines += [
                f'modeldeploy_labelled_predictions_total{{{labels},correct="true"}} {correct}',
                f'modeldeploy_labelled_predictions_total{{{labels},correct="false"}} {wrong}',
                f'modeldeploy_requests_total{{{labels},outcome="ok"}} {total}',
                f'modeldeploy_request_duration_seconds_bucket{{{labels},le="0.02"}} {total - slow}',
                f'modeldeploy_request_duration_seconds_bucket{{{labels},le="+Inf"}} {total}',
            ]
        return "\n".join(lines) + "\n"


class Serving:
    """Processes by URL; ``down`` makes every scrape fail."""

    def __init__(self, urls: tuple[str, ...] = (URL,), start: float | None = 1000.0) -> None:
        self.processes = {url: Process(start) for url in urls}
        self.down = False

    @property
    def pod(self) -> Process:
        return self.processes[URL]

    def text(self, url: str) -> str:
        if self.down:
            raise OSError("connection refused")
        return self.processes[url].text()


def windows(serving: Serving, latency_spans_steps: bool = False) -> MetricsWindows:
    return MetricsWindows(
        lambda target: ScrapeProvider(list(serving.processes), fetch=serving.text),
        latency_spans_steps=latency_spans_steps,
    )


def via_status(state: dict | None) -> dict | None:
    """What a status write and read give back: JSON."""
    return json.loads(json.dumps(state))


def started(serving: Serving, status: Status = STATUS) -> dict:
    """The state the first tick of the window persists in the status."""
    serving.pod.add("stable", 80, 100)
    serving.pod.add("canary", 40, 50)
    first = windows(serving).read(TARGET, status, None)
    assert first.observations is None and "starts now" in first.problem
    baseline = windows(serving).baseline_after(TARGET, status, None, first.snapshot)
    assert baseline is not None and (baseline["version"], baseline["step"]) == ("2", 0)
    return via_status(baseline)


def tick(serving: Serving, baseline: dict, status: Status = STATUS, spans: bool = False):
    """One analysis tick: read, then the state the tick writes back (through JSON)."""
    reading = windows(serving, spans).read(TARGET, status, baseline)
    kept = windows(serving, spans).baseline_after(TARGET, status, baseline, reading.snapshot)
    return reading.observations, via_status(kept)


def labels(obs, arm: str) -> tuple[int, int]:
    a = getattr(obs, arm)
    return a.labelled_correct, a.labelled_total


def test_observations_count_only_what_came_after_the_window_began() -> None:
    serving = Serving()
    baseline = started(serving)
    serving.pod.add("stable", 170, 200)
    serving.pod.add("canary", 90, 100)
    # A new MetricsWindows (a restarted operator) with only the status' state.
    obs, kept = tick(serving, baseline)
    assert (labels(obs, "stable"), labels(obs, "canary")) == ((170, 200), (90, 100))
    # A tick whose status write was lost reads again from the same state: same counts.
    again, _ = tick(serving, baseline)
    assert again == obs
    serving.pod.add("canary", 9, 10)
    later, _ = tick(serving, kept)
    assert labels(later, "canary") == (99, 110) and labels(later, "stable") == (170, 200)


def test_a_restart_whose_counters_grew_back_past_the_old_values_is_detected() -> None:
    """The old first-minus-last window subtracted the old process's counts from the new's."""
    serving = Serving()
    baseline = started(serving)  # canary at 50 labels
    serving.pod.add("canary", 270, 300)
    obs, kept = tick(serving, baseline)  # canary at 350: 300 in the window
    assert labels(obs, "canary") == (270, 300)
    serving.pod.restart(at=5000.0)
    serving.pod.add("canary", 360, 400)  # the new process grew past 350 before the next read
    serving.pod.add("stable", 8, 10)
    obs, _ = tick(serving, kept)
    assert labels(obs, "canary") == (270 + 360, 300 + 400)
    assert labels(obs, "stable") == (8, 10)


def test_a_restart_without_a_start_time_is_still_seen_when_counters_drop() -> None:
    """The old window kept only the new process's counts after a detected restart."""
    serving = Serving(start=None)
    baseline = started(serving)
    serving.pod.add("canary", 270, 300)
    obs, kept = tick(serving, baseline)
    serving.pod.restart(at=0.0)
    serving.pod.start = None
    serving.pod.add("canary", 9, 10)
    obs, _ = tick(serving, kept)
    assert labels(obs, "canary") == (279, 310)  # nothing before the restart is lost


def test_a_source_that_drops_out_and_comes_back_is_not_counted_twice() -> None:
    serving = Serving(urls=(URL, "http://other/metrics"))
    baseline = started(serving)
    other = serving.processes.pop("http://other/metrics")
    other.add("canary", 5, 10)  # served while not scraped: before it vanished or after
    serving.pod.add("canary", 1, 1)
    obs, kept = tick(serving, baseline)
    assert labels(obs, "canary") == (1, 1)
    serving.processes["http://other/metrics"] = other
    obs, _ = tick(serving, kept)
    assert labels(obs, "canary") == (6, 11)  # counted once, from its kept last snapshot


def test_a_new_step_keeps_accuracy_evidence_and_restarts_latency() -> None:
    serving = Serving()
    baseline = started(serving)
    serving.pod.add("canary", 90, 100, slow=50)
    serving.pod.add("stable", 90, 100)
    obs, kept = tick(serving, baseline)
    assert obs.canary.latency is not None and obs.canary.latency.cumulative == (50, 100)
    advanced = replace(STATUS, canary=replace(STATUS.canary, step=1, weight=100))
    moved = windows(serving).baseline_after(TARGET, advanced, kept, None)
    assert moved is not None and moved["step"] == 1
    serving.pod.add("canary", 18, 20)
    obs, _ = tick(serving, via_status(moved), advanced)
    assert labels(obs, "canary") == (108, 120) and obs.step == 1  # evidence carried
    assert obs.canary.latency is not None and obs.canary.latency.cumulative == (20, 20)


@pytest.mark.parametrize("step_moves_on_a_read", [False, True])
def test_where_both_arms_serve_the_same_requests_latency_spans_the_steps(
    step_moves_on_a_read: bool,
) -> None:
    """Local mode's score-both router: the weight does not change either arm's load, so the
    latency histograms carry on across steps, and the check keeps the alpha of the step its
    experiment began at (``obs.step`` 0), instead of a new, smaller share per step."""
    serving = Serving()
    baseline = started(serving)
    serving.pod.add("canary", 90, 100, slow=50)
    serving.pod.add("stable", 90, 100)
    _, kept = tick(serving, baseline, spans=True)
    advanced = replace(STATUS, canary=replace(STATUS.canary, step=1, weight=100))
    if not step_moves_on_a_read:  # the step moved on a tick that did not read
        moved = windows(serving, True).baseline_after(TARGET, advanced, kept, None)
        assert moved is not None and moved["step"] == 1 and moved["latencyStep"] == 0
        kept = via_status(moved)
    serving.pod.add("canary", 18, 20)
    obs, after = tick(serving, kept, advanced, spans=True)
    assert labels(obs, "canary") == (108, 120) and obs.step == 0
    assert obs.canary.latency is not None and obs.canary.latency.cumulative == (70, 120)
    assert after["step"] == 1 and after["latencyStep"] == 0


def test_a_new_canary_version_starts_a_new_window() -> None:
    serving = Serving()
    baseline = started(serving)
    other = replace(STATUS, canary=CanaryState(version="3", step=0))
    fresh = windows(serving).baseline_after(TARGET, other, baseline, None)
    assert fresh is not None and fresh["version"] == "3" and fresh["totals"]["canary"] is None


def test_missing_metrics_give_no_observations_and_no_pass() -> None:
    serving = Serving()
    baseline = started(serving)
    serving.down = True
    reading = windows(serving).read(TARGET, STATUS, baseline)
    assert reading.observations is None and reading.snapshot is None
    assert "metrics unavailable" in reading.problem
    config = SPEC.rollout.analysis
    assert assess(config, None, unavailable=reading.problem).outcome == "pending"
    # The state survives the gap: it is kept, not replaced by nothing.
    assert windows(serving).baseline_after(TARGET, STATUS, baseline, None) == baseline


def test_negative_counts_from_a_broken_exporter_are_refused_by_name() -> None:
    serving = Serving()
    baseline = started(serving)
    serving.pod.broken = "-5"
    reading = windows(serving).read(TARGET, STATUS, baseline)
    assert reading.observations is None
    assert "metrics for canary contain a negative count" in reading.problem
    serving.pod.broken = "NaN"
    reading = windows(serving).read(TARGET, STATUS, baseline)
    assert reading.observations is None and "NaN" in reading.problem
    assert assess(SPEC.rollout.analysis, None, unavailable=reading.problem).outcome == "pending"


def test_the_kept_state_stays_small_when_pods_come_and_go() -> None:
    serving = Serving()
    baseline = started(serving)
    for i in range(3 * MAX_SOURCES):  # every pod replaced, again and again
        url = f"http://pod-{i}/metrics"
        serving.processes = {url: Process(start=time.time())}  # started after the read
        serving.processes[url].add("canary", 1, 1)
        serving.processes[url].add("stable", 1, 1)
        _, baseline = tick(serving, baseline)
    obs, kept = tick(serving, baseline)
    assert labels(obs, "canary") == (3 * MAX_SOURCES, 3 * MAX_SOURCES)
    assert len(kept["last"]["sources"]) <= MAX_SOURCES
    assert len(json.dumps(kept)) < 12_000


def test_no_canary_keeps_no_baseline() -> None:
    stable_only = replace(STATUS, phase="Stable", canary=None)
    assert windows(Serving()).baseline_after(TARGET, stable_only, {"version": "2"}, None) is None
