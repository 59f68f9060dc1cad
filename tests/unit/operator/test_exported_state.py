"""What the operator exports per ModelDeployment for alerts: conditions, SLO targets, price."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.utils import floatToGoString

from modeldeploy.operator import telemetry
from modeldeploy.serving.contract.latency import latency_bucket_edges
from modeldeploy.serving.metrics import latency_buckets

SPEC = {
    "model": {"name": "m"},
    "slo": {"availability": 0.999, "p99LatencySeconds": 0.3},
    "cost": {"cpuCoreHour": 0.05},
}
HELD = {
    "type": "Progressing",
    "status": "True",
    "reason": "HeldInconclusive",
    "lastTransitionTime": "2026-12-01T21:00:00Z",
}


def _samples(collector: telemetry._StateCollector) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in registry.collect()
        for s in f.samples
    }


def test_the_latency_bucket_is_an_exported_edge_never_above_the_bound() -> None:
    exported = {floatToGoString(e) for e in latency_buckets()}
    for bound in (0.0011, 0.05, 0.3, 1.0, 29.9):
        le = telemetry.latency_slo_bucket(bound)
        assert le in exported
        assert float(le) <= bound < float(le) * 1.05
    assert telemetry.latency_slo_bucket(0.0005) == floatToGoString(latency_bucket_edges()[0])


def test_conditions_objectives_and_price_are_exported_and_forgotten() -> None:
    collector = telemetry._StateCollector()
    collector.states[("ml", "s")] = telemetry.exported_state(SPEC, [HELD])
    samples = _samples(collector)
    condition = (
        telemetry.CONDITION,
        (
            ("name", "s"),
            ("namespace", "ml"),
            ("reason", "HeldInconclusive"),
            ("status", "True"),
            ("type", "Progressing"),
        ),
    )
    assert samples[condition] == 1.0
    since = (
        telemetry.CONDITION_SINCE,
        (("name", "s"), ("namespace", "ml"), ("type", "Progressing")),
    )
    assert samples[since] == 1796158800.0
    objective = (("deployment", "s"), ("namespace", "ml"))
    assert samples[(telemetry.SLO_OBJECTIVE, (*objective, ("slo", "availability")))] == 0.999
    assert samples[(telemetry.SLO_OBJECTIVE, (*objective, ("slo", "latency")))] == 0.99
    le = telemetry.latency_slo_bucket(0.3)
    bucket = (("deployment", "s"), ("le", le), ("namespace", "ml"))
    assert samples[(telemetry.SLO_LATENCY_BUCKET, bucket)] == 1.0
    assert samples[(telemetry.COST_CPU_CORE_HOUR, objective)] == 0.05
    collector.states.pop(("ml", "s"))
    assert _samples(collector) == {}


def test_no_objective_no_series_and_an_invalid_spec_keeps_its_conditions() -> None:
    collector = telemetry._StateCollector()
    collector.states[("ml", "plain")] = telemetry.exported_state({"model": {"name": "m"}}, [])
    collector.states[("ml", "bad")] = telemetry.exported_state(
        {"model": {"name": "m"}, "slo": {"availability": 7}}, [HELD, "junk", {"no": "type"}]
    )
    names = {name for name, _ in _samples(collector)}
    assert names == {telemetry.CONDITION, telemetry.CONDITION_SINCE}
    assert telemetry.exported_state(SPEC, "not a list").conditions == ()
    (row,) = telemetry.exported_state(SPEC, [{**HELD, "lastTransitionTime": "soon"}]).conditions
    assert row[3] != row[3]  # NaN: an unreadable time is no time, not 0 (1970)
