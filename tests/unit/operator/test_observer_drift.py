"""The label-free series through a tick: exposition text -> windows -> assess.

The provider is the real scrape provider with its fetch faked, as in test_observer.py: one
predictor process per arm and the router, each exporting what the real ones do
(docs/metrics.md), with ``process_start_time_seconds``. The window state goes through JSON
between ticks, as it does through the resource status.
"""

from __future__ import annotations

import json

from modeldeploy.operator.analysis import Outcome, assess
from modeldeploy.operator.analysis.verdict import CheckStatus
from modeldeploy.operator.api.status import CanaryState, Status, VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.metrics.scrape import ScrapeProvider
from modeldeploy.operator.observer import MetricsWindows
from modeldeploy.operator.platforms.base import Target

DRIFT = {"predictions": {"enabled": True}, "agreement": {"enabled": True}}
SPEC = parse_spec(
    {
        "model": {"name": "m"},
        "rollout": {"steps": [50, 100], "analysis": {"checks": ["errors"], "drift": DRIFT}},
    }
)
TARGET = Target("d", "ml", SPEC)
STATUS = Status(
    phase="Progressing", stable=VersionRef("1"), canary=CanaryState(version="2", step=0)
)
CONFIDENCE_EDGES = ("0.5", "0.9", "1.0", "+Inf")
TOKEN_EDGES = ("16.0", "64.0", "512.0", "+Inf")


class Predictor:
    """One arm's process: cumulative label-free counters since it started."""

    def __init__(self, version: str, role: str, start: float = 1000.0) -> None:
        self.version, self.role, self.start = version, role, start
        self.predicted = {"negative": 0, "positive": 0}

    def serve(self, negative: int, positive: int) -> None:
        self.predicted["negative"] += negative
        self.predicted["positive"] += positive

    def text(self) -> str:
        labels = f'deployment="d",model_version="{self.version}",role="{self.role}"'
        n = sum(self.predicted.values())
        lines = [f"process_start_time_seconds {self.start}"]
        lines.append(f'modeldeploy_requests_total{{{labels},outcome="ok"}} {n}')
        for label, count in self.predicted.items():
            lines.append(f'modeldeploy_predictions_total{{{labels},label="{label}"}} {count}')
        for edge, share in zip(CONFIDENCE_EDGES, (0, 0.2, 1, 1), strict=True):
            line = f'modeldeploy_prediction_confidence_bucket{{{labels},le="{edge}"}}'
            lines.append(f"{line} {round(n * share)}")
        for edge, share in zip(TOKEN_EDGES, (0.3, 0.9, 1, 1), strict=True):
            line = f'modeldeploy_input_tokens_bucket{{{labels},le="{edge}"}}'
            lines.append(f"{line} {round(n * share)}")
        lines.append(f"modeldeploy_truncated_inputs_total{{{labels}}} 0")
        return "\n".join(lines) + "\n"


class Router:
    """The router's paired table: (stable class, canary class) -> count."""

    def __init__(self, start: float = 1000.0) -> None:
        self.start = start
        self.table: dict[tuple[str, str], int] = {}

    def pair(self, stable: str, canary: str, count: int) -> None:
        self.table[(stable, canary)] = self.table.get((stable, canary), 0) + count

    def restart(self, at: float) -> None:
        self.start, self.table = at, {}

    def text(self) -> str:
        lines = [f"process_start_time_seconds {self.start}"]
        for (s, c), count in sorted(self.table.items()):
            labels = (
                f'deployment="d",stable_version="1",canary_version="2",'
                f'stable_label="{s}",canary_label="{c}"'
            )
            lines.append(f"modeldeploy_paired_predictions_total{{{labels}}} {count}")
        return "\n".join(lines) + "\n"


class Serving:
    def __init__(self) -> None:
        self.stable = Predictor("1", "stable")
        self.canary = Predictor("2", "canary")
        self.router = Router()
        self.urls = {"http://s/metrics": self.stable, "http://c/metrics": self.canary}
        self.urls["http://r/metrics"] = self.router

    def text(self, url: str) -> str:
        return self.urls[url].text()

    def windows(self) -> MetricsWindows:
        return MetricsWindows(lambda target: ScrapeProvider(list(self.urls), fetch=self.text))

    def paired_traffic(self, n: int, flip: float) -> None:
        """``n`` inputs scored by both; ``flip`` of stable's `negative` answers turn positive."""
        half = n // 2
        moved = round(half * flip)
        self.stable.serve(half, half)
        self.canary.serve(half - moved, half + moved)
        self.router.pair("negative", "negative", half - moved)
        self.router.pair("negative", "positive", moved)
        self.router.pair("positive", "positive", half)


def through_json(state: dict | None) -> dict | None:
    return json.loads(json.dumps(state))


def tick(serving: Serving, baseline: dict | None):
    windows = serving.windows()
    reading = windows.read(TARGET, STATUS, baseline)
    kept = windows.baseline_after(TARGET, STATUS, baseline, reading.snapshot)
    return reading, through_json(kept)


def test_a_flipping_canary_is_rolled_back_on_label_free_evidence() -> None:
    serving = Serving()
    serving.paired_traffic(400, 0.0)  # before the window: not counted
    _, baseline = tick(serving, None)
    serving.paired_traffic(600, 0.2)
    reading, baseline = tick(serving, baseline)
    obs = reading.observations
    assert obs.canary.drift.predictions == {"negative": 240, "positive": 360}
    assert obs.stable.drift.predictions == {"negative": 300, "positive": 300}
    assert obs.agreement.table[("negative", "positive")] == 60
    assert obs.canary.drift.confidence.count == 600 and obs.stable.drift.tokens.count == 600
    verdict = assess(SPEC.rollout.analysis, obs)
    result = verdict.check("drift_predictions")
    assert result.status is CheckStatus.FAIL, result.reason
    assert "canary predicts `positive` 10.0 points more often than stable" in result.reason
    assert verdict.outcome is Outcome.FAIL


def test_an_identical_canary_passes_and_a_router_restart_counts_nothing_twice() -> None:
    serving = Serving()
    _, baseline = tick(serving, None)
    serving.paired_traffic(2000, 0.0)
    reading, baseline = tick(serving, baseline)
    assert reading.observations.agreement.total == 2000
    serving.router.restart(at=5000.0)
    serving.paired_traffic(2000, 0.0)
    reading, baseline = tick(serving, baseline)
    obs = reading.observations
    assert obs.agreement.total == 4000 and obs.agreement.disagree == 0
    assert obs.canary.drift.predictions == {"negative": 2000, "positive": 2000}
    verdict = assess(SPEC.rollout.analysis, obs)
    assert verdict.check("drift_predictions").status is CheckStatus.PASS
    assert verdict.check("drift_agreement").status is CheckStatus.PASS
