"""observer.MetricsWindows: the window baseline lives in the status; no data is no verdict.

The provider is the real scrape provider with its fetch (the I/O boundary) faked: the test
writes the /metrics text the serving processes would expose.
"""

from __future__ import annotations

from dataclasses import replace

from modeldeploy.operator.analysis.assess import assess
from modeldeploy.operator.analysis_bridge import analysis_config
from modeldeploy.operator.api.status import CanaryState, Status, VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.metrics.scrape import ScrapeProvider
from modeldeploy.operator.observer import MetricsWindows
from modeldeploy.operator.platforms.base import Target

SPEC = parse_spec({"model": {"name": "m"}, "rollout": {"steps": [50, 100]}})
TARGET = Target("d", "ml", SPEC)
STATUS = Status(
    phase="Progressing", stable=VersionRef("1"), canary=CanaryState(version="2", step=0)
)


class Serving:
    """Cumulative counters per arm, exposed as /metrics text; ``None`` text is a failure."""

    def __init__(self) -> None:
        self.counts = {"stable": (0, 0), "canary": (0, 0)}  # (correct, total)
        self.down = False

    def add(self, arm: str, correct: int, total: int) -> None:
        c, n = self.counts[arm]
        self.counts[arm] = (c + correct, n + total)

    def text(self, url: str) -> str:
        if self.down:
            raise OSError("connection refused")
        lines = []
        for arm, version in (("stable", "1"), ("canary", "2")):
            correct, total = self.counts[arm]
            labels = f'deployment="d",model_version="{version}",role="{arm}"'
            lines += [
                f'modeldeploy_labelled_predictions_total{{{labels},correct="true"}} {correct}',
                f'modeldeploy_labelled_predictions_total{{{labels},correct="false"}} '
                f"{total - correct}",
                f'modeldeploy_requests_total{{{labels},outcome="ok"}} {total}',
                f'modeldeploy_request_duration_seconds_bucket{{{labels},le="0.02"}} {total}',
                f'modeldeploy_request_duration_seconds_bucket{{{labels},le="+Inf"}} {total}',
            ]
        return "\n".join(lines) + "\n"


def windows(serving: Serving) -> MetricsWindows:
    return MetricsWindows(lambda target: ScrapeProvider(["http://pod/metrics"], fetch=serving.text))


def started(serving: Serving) -> dict:
    """The baseline the first tick of the window persists in the status."""
    serving.add("stable", 80, 100)
    serving.add("canary", 40, 50)
    first = windows(serving).read(TARGET, STATUS, None)
    assert first.observations is None and "starts now" in first.problem
    baseline = windows(serving).baseline_after(TARGET, STATUS, None, first.snapshot)
    assert baseline is not None and (baseline["version"], baseline["step"]) == ("2", 0)
    return baseline


def test_observations_count_only_what_came_after_the_baseline_kept_in_status() -> None:
    serving = Serving()
    baseline = started(serving)
    serving.add("stable", 170, 200)
    serving.add("canary", 90, 100)
    # A new MetricsWindows (a restarted operator) with only the status' baseline.
    reading = windows(serving).read(TARGET, STATUS, baseline)
    obs = reading.observations
    assert (obs.stable.labelled_correct, obs.stable.labelled_total) == (170, 200)
    assert (obs.canary.labelled_correct, obs.canary.labelled_total) == (90, 100)
    assert windows(serving).baseline_after(TARGET, STATUS, baseline, reading.snapshot) == baseline


def test_a_new_step_starts_a_new_window() -> None:
    serving = Serving()
    baseline = started(serving)
    advanced = replace(STATUS, canary=replace(STATUS.canary, step=1, weight=100))
    reading = windows(serving).read(TARGET, advanced, baseline)
    assert reading.observations is None and "starts now" in reading.problem
    fresh = windows(serving).baseline_after(TARGET, advanced, baseline, reading.snapshot)
    assert fresh is not None and fresh["step"] == 1


def test_a_restarted_serving_process_counts_from_zero_again() -> None:
    serving = Serving()
    baseline = started(serving)
    serving.counts["canary"] = (9, 10)  # the canary process restarted: counters went down
    serving.add("stable", 17, 20)
    obs = windows(serving).read(TARGET, STATUS, baseline).observations
    assert (obs.canary.labelled_correct, obs.canary.labelled_total) == (9, 10)
    assert (obs.stable.labelled_correct, obs.stable.labelled_total) == (17, 20)


def test_missing_metrics_give_no_observations_and_no_pass() -> None:
    serving = Serving()
    baseline = started(serving)
    serving.down = True
    reading = windows(serving).read(TARGET, STATUS, baseline)
    assert reading.observations is None and reading.snapshot is None
    assert "metrics unavailable" in reading.problem
    config = analysis_config(SPEC)
    assert assess(config, None, unavailable=reading.problem).outcome == "pending"
    # The baseline survives the gap: it is kept, not replaced by nothing.
    assert windows(serving).baseline_after(TARGET, STATUS, baseline, None) == baseline


def test_no_canary_keeps_no_baseline() -> None:
    stable_only = replace(STATUS, phase="Stable", canary=None)
    assert windows(Serving()).baseline_after(TARGET, stable_only, {"version": "2"}, None) is None
