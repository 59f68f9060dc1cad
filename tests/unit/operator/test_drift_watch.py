"""Drift against the reference outside rollouts: recorded at promotion, watched per tick.

Same fake serving processes as test_observer_drift.py (the scrape provider's fetch faked);
status keys go through JSON between ticks, as through the resource status.
"""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from modeldeploy.operator import drift_watch
from modeldeploy.operator.analysis.drift_reference import shifts
from modeldeploy.operator.api.status import Status, VersionRef
from tests.unit.operator.test_observer_drift import TARGET, Predictor, Serving, tick

PROMOTED = Status(phase="Stable", stable=VersionRef("2"))


def promote(serving: Serving) -> dict:
    """A canary window with 1,000 canary answers, then the tick that promotes version 2."""
    _, baseline = tick(serving, None)
    serving.paired_traffic(1000, 0.0)
    _, baseline = tick(serving, baseline)
    keys = drift_watch.after_tick(serving.windows(), TARGET, PROMOTED, {}, None, baseline)
    return json.loads(json.dumps(keys))


def serve_as_stable(serving: Serving) -> Predictor:
    """After promotion version 2's process serves as stable (the old one is gone)."""
    new = Predictor("2", "stable", start=3000.0)
    serving.urls = {"http://s2/metrics": new}
    return new


def gauge(name: str, signal: str) -> float | None:
    labels = {"namespace": "ml", "name": "d", "model_version": "2", "signal": signal}
    return REGISTRY.get_sample_value(name, labels)


def test_the_promoting_tick_records_the_reference_and_it_survives() -> None:
    serving = Serving()
    keys = promote(serving)
    reference = keys[drift_watch.REFERENCE]
    assert reference["version"] == "2"
    assert reference["counts"]["p/negative"] == 500 and reference["counts"]["p/positive"] == 500
    # a later tick (no window any more) keeps it as it is
    serve_as_stable(serving)
    later = drift_watch.after_tick(serving.windows(), TARGET, PROMOTED, keys, None, None)
    assert later[drift_watch.REFERENCE] == reference


def test_a_shift_from_the_reference_is_exported_and_equal_traffic_is_not() -> None:
    serving = Serving()
    keys = promote(serving)
    stable = serve_as_stable(serving)
    keys = drift_watch.after_tick(serving.windows(), TARGET, PROMOTED, keys, None, None)
    stable.serve(400, 400)  # the same mix as the reference
    keys = json.loads(
        json.dumps(drift_watch.after_tick(serving.windows(), TARGET, PROMOTED, keys, None, None))
    )
    figures = keys[drift_watch.WATCH]["figures"]
    assert figures["predictions"]["estimate"] == 0.0 and figures["predictions"]["lower"] == 0.0
    assert figures["predictions"]["requests"] == 800
    stable.serve(100, 700)  # now 500 / 1100: positive 68.75% against 50%
    keys = drift_watch.after_tick(serving.windows(), TARGET, PROMOTED, keys, None, None)
    figures = keys[drift_watch.WATCH]["figures"]
    assert abs(figures["predictions"]["estimate"] - 0.1875) < 1e-6
    assert figures["predictions"]["lower"] > 0.1
    assert (
        gauge("modeldeploy_drift_shift_ratio", "predictions") == figures["predictions"]["estimate"]
    )
    assert gauge("modeldeploy_drift_shift_lower_bound_ratio", "predictions") > 0.1


def test_no_reference_or_a_canary_means_no_watch() -> None:
    assert drift_watch.after_tick(Serving().windows(), TARGET, PROMOTED, {}, None, None) == {
        drift_watch.REFERENCE: None,
        drift_watch.WATCH: None,
    }


def test_shifts_need_enough_requests_on_both_sides() -> None:
    reference = {"p/a": 500.0, "p/b": 500.0}
    assert shifts(reference, {"p/a": 10.0}, alpha=0.05, scale=0.03, min_requests=200) == {}


def test_a_promoted_process_still_labelled_canary_is_watched_by_its_version() -> None:
    serving = Serving()
    keys = promote(serving)
    serving.urls = {"http://c/metrics": serving.canary}  # the same process serves on
    keys = drift_watch.after_tick(serving.windows(), TARGET, PROMOTED, keys, None, None)
    serving.canary.serve(300, 300)
    keys = drift_watch.after_tick(serving.windows(), TARGET, PROMOTED, keys, None, None)
    assert keys[drift_watch.WATCH]["figures"]["predictions"]["requests"] == 600


def test_a_new_rollout_stops_the_watch_and_clears_its_gauges() -> None:
    from modeldeploy.operator.api.status import CanaryState

    serving = Serving()
    keys = promote(serving)
    stable = serve_as_stable(serving)
    keys = drift_watch.after_tick(serving.windows(), TARGET, PROMOTED, keys, None, None)
    stable.serve(300, 300)
    keys = drift_watch.after_tick(serving.windows(), TARGET, PROMOTED, keys, None, None)
    assert gauge("modeldeploy_drift_shift_ratio", "predictions") is not None
    rolling = Status(phase="Progressing", stable=VersionRef("2"), canary=CanaryState("3"))
    keys = drift_watch.after_tick(serving.windows(), TARGET, rolling, keys, None, None)
    assert keys[drift_watch.WATCH] is None and keys[drift_watch.REFERENCE]["version"] == "2"
    assert gauge("modeldeploy_drift_shift_ratio", "predictions") is None
