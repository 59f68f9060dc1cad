"""The serving/operator contract: names, buckets, warm-up, ids, labels, store, predictor argv."""

from __future__ import annotations

import argparse
import itertools
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modeldeploy.serving.contract import args as cargs
from modeldeploy.serving.contract import ids, latency
from modeldeploy.serving.contract import names as n
from modeldeploy.serving.contract.store import BoundedStore

ROOT = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_contract_imports_without_torch_kserve_numpy_or_prometheus() -> None:
    """The operator image carries no torch: the contract must be plain Python + stdlib."""
    code = (
        "import sys, modeldeploy.serving.contract as c\n"
        "from modeldeploy.serving.contract import args, ids, latency, names, store\n"
        "heavy = {'torch', 'kserve', 'numpy', 'prometheus_client', 'transformers', 'fastapi'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# --- latency buckets ------------------------------------------------------------------


def test_bucket_edges_have_one_exact_ratio_of_at_most_1_05() -> None:
    edges = latency.latency_bucket_edges()
    ratio = latency.LATENCY_BUCKET_RATIO
    assert ratio <= 1.05
    consecutive = [b / a for a, b in itertools.pairwise(edges)]
    assert all(abs(r - ratio) / ratio <= 1e-12 for r in consecutive)
    assert [e == latency.LATENCY_BUCKET_BASE_S * ratio**k for k, e in enumerate(edges)] == [
        True
    ] * len(edges)


def test_bucket_edges_span_1_ms_to_30_s() -> None:
    edges = latency.latency_bucket_edges()
    assert edges[0] == pytest.approx(0.001)
    assert edges[-1] >= 30.0 > edges[-2]
    assert len(edges) == len(set(edges))


@pytest.mark.parametrize(
    ("base", "ratio", "top"), [(0.0, 1.05, 1.0), (0.001, 1.0, 1.0), (0.001, 1.05, 0.0005)]
)
def test_bucket_edges_refuse_degenerate_layouts(base: float, ratio: float, top: float) -> None:
    with pytest.raises(ValueError):
        latency.latency_bucket_edges(base, ratio, top)


def _bucket_bounds(edges: np.ndarray, value: float) -> tuple[float, float]:
    """The edges around ``value`` (``le`` semantics: the bucket with ``lower < value <= upper``)."""
    i = int(np.searchsorted(edges, value, side="left"))
    return float(edges[i - 1]), float(edges[i])


def test_the_smallest_resolvable_tolerance_is_one_bucket_per_arm() -> None:
    """Each arm's P99 is known to one bucket, so the ratio of the two P99s to ``ratio**2``,
    that is ``1 + 2 * (ratio - 1)`` to first order: the minimum p99 tolerance (0.1) covers it."""
    ratio = latency.LATENCY_BUCKET_RATIO
    tolerance = latency.LATENCY_RESOLVABLE_TOLERANCE
    assert tolerance == pytest.approx(2 * (ratio - 1), rel=1e-12)
    assert tolerance <= 0.1
    edges = np.array(latency.latency_bucket_edges())
    worst_equal = 0.0
    for stable in np.geomspace(0.0011, 29.0, 3000):  # identical arms share a bucket
        lower, upper = _bucket_bounds(edges, stable)
        worst_equal = max(worst_equal, upper / lower)
    assert worst_equal == pytest.approx(ratio, rel=1e-9)
    worst_apart = 0.0
    for edge in edges[1:-1]:  # arms a hair apart, on either side of an edge
        lower_stable, _ = _bucket_bounds(edges, edge * (1 - 1e-9))
        _, upper_canary = _bucket_bounds(edges, edge * (1 + 1e-9))
        worst_apart = max(worst_apart, upper_canary / lower_stable)
    assert worst_apart == pytest.approx(ratio**2, rel=1e-9)
    assert ratio**2 - 1 - tolerance == pytest.approx((ratio - 1) ** 2, abs=1e-12)


def _histogram_quantile(q: float, bounds: tuple[float, ...], samples: np.ndarray) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q."""
    edges = np.array((0.0, *bounds))
    counts = np.cumsum(np.histogram(samples, bins=(*edges, np.inf))[0])
    rank = q * len(samples)
    i = int(np.searchsorted(counts, rank))
    below = counts[i - 1] if i else 0
    return float(edges[i] + (edges[i + 1] - edges[i]) * (rank - below) / (counts[i] - below))


@pytest.mark.parametrize("q", [0.5, 0.99])
@pytest.mark.parametrize("shape", ["lognormal", "constant"])
def test_every_quantile_from_1_ms_to_30_s_is_resolved_within_one_bucket(q, shape) -> None:
    """Interpolated quantiles are within ``ratio - 1`` of the truth anywhere in the span
    (constant samples are the worst case: all the mass at one point of a bucket)."""
    bounds = latency.latency_bucket_edges()
    unit = np.random.default_rng(0).lognormal(mean=0.0, sigma=0.5, size=20_000)
    if shape == "constant":
        unit = np.ones(1000)
    worst = 0.0
    for target in np.geomspace(0.0011, 29.0, 300):
        samples = unit * (target / np.quantile(unit, q))
        worst = max(worst, abs(_histogram_quantile(q, bounds, samples) - target) / target)
    assert worst <= latency.LATENCY_BUCKET_RATIO - 1 + 1e-9


def test_serving_and_the_simulation_use_the_contract_buckets() -> None:
    from modeldeploy.serving.metrics import latency_buckets
    from modeldeploy.tools.bench.simulation import contract_buckets

    assert latency_buckets() == latency.latency_bucket_edges()
    assert tuple(contract_buckets()[:-1]) == latency.latency_bucket_edges()
    assert math.isinf(contract_buckets()[-1])


# --- latency warm-up ------------------------------------------------------------------


def _arm(warmup: int) -> tuple[object, CollectorRegistry]:
    from modeldeploy.serving.metrics import ArmMetrics

    registry = CollectorRegistry()
    arm = ArmMetrics("d", "1", "canary", ["neg", "pos"], registry, latency_warmup_requests=warmup)
    return arm, registry


def _counts(registry: CollectorRegistry) -> tuple[float, float]:
    labels = {"deployment": "d", "model_version": "1", "role": "canary"}
    timed = sum(
        registry.get_sample_value(n.REQUEST_DURATION + "_count", {**labels, "protocol": p}) or 0
        for p in n.PROTOCOLS
    )
    counted = sum(
        registry.get_sample_value(n.REQUESTS, {**labels, "outcome": o}) or 0
        for o in n.REQUEST_OUTCOMES
    )
    return timed, counted


def test_the_first_requests_are_counted_but_not_timed() -> None:
    arm, registry = _arm(3)
    slow = 10.0  # a cold start: would be the P99 of a small window
    for protocol, outcome in [("v1", "ok"), ("grpc", "error"), ("v2", "bad_input")]:
        arm.observe_request(protocol, outcome, slow)  # type: ignore[attr-defined]
    assert _counts(registry) == (0, 3)
    for _ in range(4):
        arm.observe_request("v1", "ok", 0.01)  # type: ignore[attr-defined]
    assert _counts(registry) == (4, 7)
    labels = {"deployment": "d", "model_version": "1", "role": "canary", "protocol": "v1"}
    assert registry.get_sample_value(n.REQUEST_DURATION + "_sum", labels) == pytest.approx(0.04)


def test_no_warm_up_times_every_request_and_the_default_is_the_contracts() -> None:
    arm, registry = _arm(0)
    arm.observe_request("v1", "ok", 0.01)  # type: ignore[attr-defined]
    assert _counts(registry) == (1, 1)
    assert cargs.PredictorOptions().latency_warmup_requests == 20
    assert latency.DEFAULT_LATENCY_WARMUP_REQUESTS == 20
    with pytest.raises(ValueError):
        _arm(-1)


# --- request ids and item ids ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("r1", "r1"),
        ("  demo-abc  ", "demo-abc"),
        ("tenant/abc:1@x", "tenant/abc:1@x"),
        ("x" * ids.MAX_REQUEST_ID_CHARS, "x" * ids.MAX_REQUEST_ID_CHARS),
        (None, None),
        ("   ", None),
        (7, None),
    ],
)
def test_request_ids_that_are_accepted(raw: object, parsed: str | None) -> None:
    assert ids.parse_request_id(raw) == parsed


@pytest.mark.parametrize(
    "raw", ["x" * (ids.MAX_REQUEST_ID_CHARS + 1), "a b", "a\nb", "a\x00b", "café", "id\u200b"]
)
def test_request_ids_that_cannot_travel_in_a_header_are_refused(raw: str) -> None:
    with pytest.raises(ids.RequestIdError):
        ids.parse_request_id(raw)


def test_item_ids_and_their_request() -> None:
    from modeldeploy.serving.codecs import item_ids as predictor_item_ids
    from modeldeploy.serving.router.pairing import item_ids as router_item_ids

    assert ids.item_ids("r", 1) == ["r"] and ids.item_ids("r", 3) == ["r/0", "r/1", "r/2"]
    assert predictor_item_ids is ids.item_ids and router_item_ids is ids.item_ids
    assert ids.request_of("r/2") == "r" and ids.request_of("r") == "r"
    assert ids.request_of("r/²") == "r/²"  # not an ASCII index


@pytest.mark.parametrize(
    "value", ["r", "r/3", "x" * ids.MAX_REQUEST_ID_CHARS + "/63", "tenant/abc/0"]
)
def test_item_ids_feedback_may_name(value: str) -> None:
    assert ids.parse_item_id(value) == value


@pytest.mark.parametrize(
    "value", ["", None, 3, "x" * (ids.MAX_REQUEST_ID_CHARS + 1), "r/1234567", "a b/1", "é/1"]
)
def test_item_ids_feedback_may_not_name(value: object) -> None:
    with pytest.raises(ids.RequestIdError):
        ids.parse_item_id(value)


# --- labels ---------------------------------------------------------------------------

LABELS = ["negative", "positive"]


@pytest.mark.parametrize(
    ("value", "index"),
    [
        (0, 0),
        (1, 1),
        ("1", 1),
        ("positive", 1),
        ("²", None),  # isdigit() is True, int() raises
        ("١", None),  # Arabic-Indic one: isdigit() is True, int() reads 1
        ("１", None),  # fullwidth one
        (" 1", None),
        ("-1", None),
        ("2", None),
        (2, None),
        (-1, None),
        (True, None),
        (1.0, None),
        (None, None),
        ("9" * 5000, None),  # int() of it would raise (digit limit), and it names no class
    ],
)
def test_a_label_is_an_index_ascii_digits_or_a_declared_name(value: object, index) -> None:
    assert ids.label_index(value, LABELS) == index
    for candidate in range(len(LABELS)):
        assert ids.label_matches(value, LABELS[candidate], candidate) is (index == candidate)


def test_a_declared_name_wins_over_digits() -> None:
    assert ids.label_index("1", ["1", "0"]) == 0


@pytest.mark.parametrize("value", ["²", "١", "9" * 5000])
def test_feedback_and_router_refuse_unicode_digits_without_crashing(value: str) -> None:
    from modeldeploy.serving.feedback import FeedbackError, resolve_label
    from modeldeploy.serving.router.pairing import ArmPrediction

    with pytest.raises(FeedbackError) as info:
        resolve_label(value, LABELS)
    assert info.value.status == 400
    assert ArmPrediction("1", "positive", 1).matches(value) is False


def test_a_huge_digit_string_is_refused_quickly() -> None:
    started = time.perf_counter()
    assert ids.label_index("1" * 1_000_000, LABELS) is None
    assert time.perf_counter() - started < 0.5


# --- the bounded store ----------------------------------------------------------------


def test_store_expires_after_ttl_and_says_expired_not_unknown() -> None:
    clock = Clock()
    store: BoundedStore[int] = BoundedStore(capacity=10, ttl_s=5, clock=clock)
    store.put("a", 1)
    clock.now = 4.9
    assert store.lookup("a") == ("found", 1)
    clock.now = 5.0
    assert store.lookup("a") == ("expired", None)
    assert store.lookup("b") == ("unknown", None)


def test_store_evicts_oldest_first_and_keeps_tombstones_bounded() -> None:
    store: BoundedStore[int] = BoundedStore(capacity=2, ttl_s=100, clock=Clock())
    for i, key in enumerate("abcde"):
        store.put(key, i)
    assert len(store) == 2 and store.get("d") == 3 and store.get("e") == 4
    assert store.lookup("c")[0] == "expired" and store.lookup("b")[0] == "expired"
    assert store.lookup("a")[0] == "unknown"  # its tombstone was bounded away too


def test_setdefault_joins_the_live_entry_without_re_timing_it() -> None:
    clock = Clock()
    store: BoundedStore[list[str]] = BoundedStore(capacity=10, ttl_s=5, clock=clock)
    store.setdefault("a", list).append("stable")
    clock.now = 3.0
    store.setdefault("a", list).append("canary")
    assert store.get("a") == ["stable", "canary"]
    clock.now = 5.0  # the TTL counts from the first answer
    assert store.lookup("a") == ("expired", None)
    assert store.setdefault("a", list) == [] and store.lookup("a")[0] == "found"


@pytest.mark.parametrize(("capacity", "ttl"), [(0, 1.0), (1, 0.0)])
def test_store_refuses_no_room_or_no_time(capacity: int, ttl: float) -> None:
    with pytest.raises(ValueError):
        BoundedStore(capacity, ttl)


def test_predicting_a_labelled_id_again_does_not_reopen_it() -> None:
    from modeldeploy.serving.feedback import PredictionStore

    store = PredictionStore(clock=Clock())
    store.put("a", 0)
    assert store.take("a")[0] == "found"
    store.put("a", 1)  # the same id predicted again (a client retry)
    status, entry = store.take("a")
    assert status == "duplicate" and entry is not None and entry.label_index == 0


def test_the_router_book_keeps_a_labelled_item_labelled() -> None:
    from modeldeploy.serving.router.pairing import ArmPrediction, ScoreBook

    book = ScoreBook(clock=Clock())
    book.record(["a"], "stable", [ArmPrediction("1", "negative", 0)])
    item = book.get("a")
    assert item is not None
    item.labelled = True
    book.record(["a"], "canary", [ArmPrediction("2", "positive", 1)])
    again = book.get("a")
    assert again is item and again.labelled and set(again.predictions) == {"stable", "canary"}


# --- the predictor's command line -----------------------------------------------------

OPTION_SETS = [
    cargs.PredictorOptions(),
    cargs.PredictorOptions(model_dir=Path("/models/tiny"), threads=1, grpc_port=0),
    cargs.PredictorOptions.from_registry("http://mlflow:5000", "sentiment", "3", "ml/s", "canary"),
    cargs.PredictorOptions(
        registry_uri="http://127.0.0.1:5000",
        model="m",
        version="champion",
        fetch_cache=Path("/tmp/cache dir"),
        name="-dash",
        deployment="a b",
        role="shadow",
        model_version="7",
        http_port=9000,
        grpc_port=9001,
        max_batch_size=8,
        max_batch_delay_ms=0.1,
        max_instances=4,
        max_length=128,
        truncation="reject",
        max_chars=2000,
        max_body_bytes=20000,
        runtime="onnx-int8",
        parity_tolerance=0.03,
        threads=2,
        feedback_ttl_s=2.5,
        feedback_capacity=10,
        latency_warmup_requests=0,
        access_log=True,
        response_detail="full",
    ),
]


@pytest.mark.parametrize("options", OPTION_SETS)
def test_predictor_args_is_the_exact_inverse_of_the_parser(options) -> None:
    assert cargs.parse_predictor_args(cargs.predictor_args(options)) == options


def test_the_predictor_parser_is_the_contracts() -> None:
    """``python -m modeldeploy.serving`` declares its options through the contract."""
    from modeldeploy.serving.config import add_arguments, from_args

    options = OPTION_SETS[3]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    namespace = parser.parse_args(cargs.predictor_args(options))
    assert cargs.options_from(namespace) == options
    config = from_args(namespace)
    assert (config.name, config.deployment, config.role) == ("-dash", "a b", "shadow")
    assert (config.http_port, config.grpc_port, config.latency_warmup_requests) == (9000, 9001, 0)
    assert config.policy.mode == "reject" and config.batching.max_delay_s == pytest.approx(1e-4)


def test_identity_options_are_written_even_at_their_default() -> None:
    written = cargs.predictor_args(cargs.PredictorOptions(model_dir=Path("m")))
    flags = {a for a in written if a.startswith("--")}
    assert {"--name", "--deployment", "--role", "--http-port", "--grpc-port"} <= flags
    assert "--latency-warmup-requests" in flags and "--max-batch-size" not in flags
    assert "--response-detail" in flags  # what clients see is never left to an image default


def test_contract_choices_match_the_serving_code() -> None:
    from modeldeploy.serving.backends.base import RUNTIMES

    assert cargs.PREDICTOR_RUNTIMES == RUNTIMES
    assert 0.0 <= cargs.DEFAULT_PAIRED_SHARE <= 1.0  # a fraction; the router takes percent


def test_a_registry_version_is_served_under_the_registered_model_name() -> None:
    options = cargs.PredictorOptions.from_registry("u", "sentiment", "4", "ml/sentiment", "stable")
    assert (options.name, options.model_version) == ("sentiment", "4")


def _target():
    from modeldeploy.operator.api.types import parse_spec
    from modeldeploy.operator.platforms.base import Target

    spec = parse_spec({"model": {"name": "sentiment", "registryUri": "http://mlflow:5000"}})
    return Target("sentiment", "ml", spec, uid="u-1", registry_uri="http://mlflow:5000")


def test_cluster_and_local_mode_serve_the_model_under_the_same_name(monkeypatch, tmp_path) -> None:
    from modeldeploy.operator.api.status import VersionRef
    from modeldeploy.operator.local import procs
    from modeldeploy.operator.local.platform import LocalOptions, LocalPlatform
    from modeldeploy.operator.local.state import StateDir
    from modeldeploy.operator.platforms import kserve_manifests

    ref = VersionRef("3", "dd", "s3://b/3")
    container = kserve_manifests.predictor(_target(), ref, "canary")["containers"][0]
    cluster = cargs.parse_predictor_args(container["args"])

    started: list[list[str]] = []

    def fake_start(name, argv, **kwargs):
        started.append(list(argv))
        return procs.ProcRecord(name, 1, kwargs["port"], "log", kwargs.get("labels", {}))

    monkeypatch.setattr(procs, "start", fake_start)
    platform = LocalPlatform(StateDir(tmp_path), LocalOptions(threads=1))
    platform._predictor(_target(), "canary", ref)
    argv = started[0]
    assert argv[1:3] == ["-m", cargs.PREDICTOR_MODULE]
    local = cargs.parse_predictor_args(argv[3:])

    for options in (cluster, local):
        assert (options.name, options.model, options.version) == ("sentiment", "sentiment", "3")
        assert (options.deployment, options.role, options.model_version) == (
            "sentiment",
            "canary",
            "3",
        )
    assert (cluster.http_port, local.grpc_port, local.threads) == (8080, 0, 1)


# --- series names ---------------------------------------------------------------------


def _exported(registry: CollectorRegistry) -> dict[str, str]:
    """Exported name -> type: counters as ``<name>_total``, everything else as declared."""
    out = {}
    for family in registry.collect():
        out[family.name + ("_total" if family.type == "counter" else "")] = family.type
    return out


def test_serving_exports_the_contract_names() -> None:
    from modeldeploy.serving.gpu import GpuDevices, GpuMeter
    from modeldeploy.serving.metrics import ArmMetrics, paired_outcomes_counter

    registry = CollectorRegistry()
    ArmMetrics("d", "1", "stable", LABELS, registry, gpu=GpuMeter(GpuDevices(1, "nvml")))
    paired_outcomes_counter(registry)
    exported = _exported(registry)
    per_arm = {
        n.REQUEST_DURATION: "histogram",
        n.REQUESTS: "counter",
        n.NAN_OUTPUTS: "counter",
        n.TOKENIZATION_FAILURES: "counter",
        n.INPUT_TOKENS: "histogram",
        n.TRUNCATED_INPUTS: "counter",
        n.BATCH_SIZE: "histogram",
        n.FORWARD_PASS_DURATION: "histogram",
        n.PREDICTIONS: "counter",
        n.PREDICTION_CONFIDENCE: "histogram",
        n.LABELLED_PREDICTIONS: "counter",
        n.FEEDBACK_REJECTED: "counter",
        n.PAIRED_OUTCOMES_TOTAL: "counter",
        n.CPU_SECONDS: "counter",
        n.GPU_ALLOCATED_SECONDS: "counter",  # only where the process holds a GPU
        n.GPU_BUSY_SECONDS: "counter",
        n.GPU_DEVICES: "gauge",
    }
    assert exported == per_arm
    assert set(n.ANALYSIS_ARM_SERIES) <= {*per_arm, n.REQUEST_DURATION_BUCKET}


def test_the_router_exports_the_contract_names() -> None:
    from modeldeploy.serving.router.metrics import RouterMetrics

    metrics = RouterMetrics("d")
    metrics.set_split(25.0, 10.0)
    exported = set(_exported(metrics.registry))
    # process_start_time_seconds lets the analysis see a restarted router
    assert "process_start_time_seconds" in exported
    assert {name for name in exported if not name.startswith("process_")} == {
        n.ROUTER_REQUESTS,
        n.ROUTER_UPSTREAM_ERRORS,
        n.ROUTER_SHADOW_COMPARISONS,
        n.ROUTER_FEEDBACK,
        n.ROUTER_CANARY_WEIGHT,
        n.ROUTER_PAIRED_SHARE,
        n.PAIRED_OUTCOMES_TOTAL,
        n.PAIRED_PREDICTIONS,
    }
    get = metrics.registry.get_sample_value
    assert get(n.ROUTER_CANARY_WEIGHT, {"deployment": "d"}) == 0.25
    assert get(n.ROUTER_PAIRED_SHARE, {"deployment": "d"}) == 0.1


def test_the_analysis_reads_the_contract_names() -> None:
    from modeldeploy.operator.metrics import prometheus, snapshot

    expected = n.ANALYSIS_ARM_SERIES + n.DRIFT_ARM_SERIES
    assert snapshot.ARM_METRICS == prometheus.ARM_METRICS == expected
    assert snapshot.PAIR_DRIFT_METRICS == prometheus.PAIR_DRIFT_METRICS == n.DRIFT_PAIR_SERIES
    assert snapshot.PAIRED == prometheus.PAIRED == n.PAIRED_OUTCOMES_TOTAL
    assert snapshot.PAIRED_OUTCOMES == n.PAIRED_OUTCOMES


def test_docs_list_every_serving_series_with_its_type() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    rows = dict(
        re.findall(r"^\| `(modeldeploy_[a-z0-9_]+)` \| (counter|gauge|histogram) \|", text, re.M)
    )
    for name in (
        n.REQUEST_DURATION,
        n.INPUT_TOKENS,
        n.BATCH_SIZE,
        n.FORWARD_PASS_DURATION,
        n.PREDICTION_CONFIDENCE,
    ):
        assert rows.get(name) == "histogram", name
    for name in (
        n.REQUESTS,
        n.NAN_OUTPUTS,
        n.TOKENIZATION_FAILURES,
        n.TRUNCATED_INPUTS,
        n.CPU_SECONDS,
        n.GPU_ALLOCATED_SECONDS,
        n.GPU_BUSY_SECONDS,
        n.PREDICTIONS,
        n.LABELLED_PREDICTIONS,
        n.FEEDBACK_REJECTED,
        n.PAIRED_OUTCOMES_TOTAL,
    ):
        assert rows.get(name) == "counter", name


@pytest.mark.parametrize(
    ("stable", "canary", "outcome"),
    [(True, True, "both_correct"), (True, False, "stable_only"), (False, True, "canary_only")],
)
def test_paired_outcome_is_one_of_the_contract_outcomes(stable, canary, outcome) -> None:
    assert n.paired_outcome(stable, canary) == outcome
    assert n.paired_outcome(False, False) == "both_wrong"
    assert set(n.PAIRED_OUTCOMES) == {
        n.paired_outcome(a, b) for a in (True, False) for b in (True, False)
    }


def test_cpu_seconds_are_the_processs_own_and_grow_with_work() -> None:
    import time

    from modeldeploy.serving.metrics import ArmMetrics

    registry = CollectorRegistry()
    ArmMetrics("d", "1", "canary", LABELS, registry)
    ArmMetrics("d", "1", "canary", LABELS, registry)  # a second bind adds no second series
    labels = {"deployment": "d", "model_version": "1", "role": "canary"}
    samples = [s for f in registry.collect() for s in f.samples if s.name == n.CPU_SECONDS]
    assert [s.labels for s in samples] == [labels]
    before = registry.get_sample_value(n.CPU_SECONDS, labels)
    assert before is not None and 0 < before <= time.process_time()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn 50 ms of CPU
        pass
    after = registry.get_sample_value(n.CPU_SECONDS, labels)
    assert after is not None and after - before >= 0.05
