"""Are two equal arms measured equally? Real predictors behind the real router, demo traffic.

``python -m modeldeploy.tools.bench.serving.fairness [--score-both] [--pin] [--even] ...``

Starts a stable and a canary predictor (``tiny`` and ``tiny-distilbert`` by default: the
same weights, so equal cost), 1 thread each as local mode runs them, and the router in
front (weight, paired share and pairing on label as local mode sets them), drives the
demo's traffic through it, and prints, per arm, the latency quantiles from the arm's own
histogram (the analysis' source) and, per arm and purpose, what the router saw: latency,
and how often a call arrived while another call to that arm was in flight.

It found why the quick demo's canary showed a higher P99 than its equal stable
(docs/serving.md, "Router pairing"). ``--no-pacing`` turns the router's re-score pacing
off, ``--even`` spaces arrivals evenly (the old demo driver) instead of Poisson.
``--score-both`` runs the router as local mode does (both arms score every request),
``--pin`` puts each predictor on a CPU of its own as local mode does (stable on the first,
the canary on the next: ``operator/local/cpus.py``). The router and the driver (a process
of its own) run ``--helper-niceness`` steps below the predictors, as local mode runs its
helpers (default 10; 0 was the setting before that default). With ``--score-both`` it also reports
whether the two latencies of one request share their tail (``paired_tail``: they did not,
docs/demo.md, "Pairs do not steady the tail on shared cores"); ``--calls-log`` keeps every
upstream call. On a shared machine run it at a raised priority (its processes use about a
third of a core), or the other jobs decide the figures.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.operator.local.cpus import arm_cpus, pin, usable_cpus
from modeldeploy.operator.local.priority import HELPER_NICENESS, NICE_MAX, lower
from modeldeploy.serving.contract.names import REQUEST_DURATION
from modeldeploy.serving.ports import pick_port

ROUTER_WRAPPER = "modeldeploy.tools.bench.serving.fairness_router"


def _free_port() -> int:
    return pick_port()


def _wait_ok(url: str, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"not ready after {timeout:.0f}s: {url}")


def _buckets(url: str) -> dict[float, float]:
    """Cumulative v1 latency buckets of one predictor (upper edge -> count)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if family.name != REQUEST_DURATION:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("protocol") == "v1":
                out[float(sample.labels["le"])] += sample.value
    return dict(out)


def histogram_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """P50/P90/P99 (bucket upper edges, ms) of the requests observed between two scrapes."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    result: dict[str, float] = {"n": counts[-1] if counts else 0.0}
    for q in (0.5, 0.9, 0.99):
        for edge, count in zip(edges, counts, strict=True):
            if counts and count >= q * counts[-1]:
                result[f"p{round(q * 100)}_ms"] = round(edge * 1000, 2)
                break
    return result


def call_stats(rows: list[tuple[float, str, str, float]]) -> dict[str, dict[str, Any]]:
    """Per arm and purpose: latency quantiles (ms) and the share of calls that arrived busy.

    ``rows`` are (start, role, purpose, seconds) of the router's upstream calls.
    """

    def quantile(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    out: dict[str, dict[str, Any]] = {}
    for role in sorted({r[1] for r in rows}):
        mine = sorted(r for r in rows if r[1] == role)
        starts = [r[0] for r in mine]
        ends = sorted(r[0] + r[3] for r in mine)
        latency: dict[str, list[float]] = defaultdict(list)
        busy: dict[str, int] = defaultdict(int)
        for start, _, purpose, seconds in mine:
            latency[purpose].append(seconds * 1000)
            if bisect.bisect_left(starts, start) - bisect.bisect_right(ends, start) > 0:
                busy[purpose] += 1
        out[role] = {
            purpose: {
                "n": len(values),
                "p50_ms": quantile(values, 0.5),
                "p99_ms": quantile(values, 0.99),
                "busy_at_arrival": round(busy[purpose] / len(values), 3),
            }
            for purpose, values in latency.items()
        }
    return out


def paired_tails(
    calls: list[tuple[float, str, str, float, str]], tolerance: float = 0.1
) -> dict[str, Any]:
    """Score-both only: do the two arms' latencies of one request share their tail?

    ``calls`` are (start, role, purpose, seconds, request id) of the router's upstream
    calls; a request scored by both arms is a pair. ``e`` is the contract's bucket edge at
    stable's observed P99 (as the latency check takes it), the canary's threshold the first
    edge at or above ``(1 + tolerance) e``. Reported: how often each arm alone, and both,
    were above their threshold, and the z of the share difference computed on pairs and as
    if the arms were independent. Equal z means pairing would decide no sooner.
    """
    from modeldeploy.serving.contract.latency import latency_bucket_edges

    by_id: dict[str, dict[str, float]] = defaultdict(dict)
    for _, role, _, seconds, request_id in calls:
        by_id[request_id][role] = seconds
    pairs = [(arms["stable"], arms["canary"]) for arms in by_id.values() if len(arms) == 2]
    if len(pairs) < 100:
        return {"pairs": len(pairs)}
    edges = latency_bucket_edges()
    stable = sorted(s for s, _ in pairs)
    e = edges[bisect.bisect_left(edges, stable[math.ceil(0.99 * len(stable)) - 1])]
    threshold = edges[bisect.bisect_left(edges, (1 + tolerance) * e * (1 - 1e-9))]
    n = len(pairs)
    only_stable = sum(1 for s, c in pairs if s > e and c <= threshold) / n
    only_canary = sum(1 for s, c in pairs if c > threshold and s <= e) / n
    both = sum(1 for s, c in pairs if c > threshold and s > e) / n
    p_s, p_c = only_stable + both, only_canary + both
    diff = p_c - p_s
    paired_var = (only_stable + only_canary - diff * diff) / n
    unpaired_var = (p_c * (1 - p_c) + p_s * (1 - p_s)) / n
    correlation = statistics.correlation(
        [math.log(s) for s, _ in pairs], [math.log(c) for _, c in pairs]
    )
    return {
        "pairs": n,
        "log_latency_correlation": round(correlation, 3),
        "stable_edge_ms": round(e * 1000, 1),
        "canary_threshold_ms": round(threshold * 1000, 1),
        "only_stable_above": round(only_stable, 4),
        "only_canary_above": round(only_canary, 4),
        "both_above": round(both, 4),
        "z_paired": round(diff / math.sqrt(paired_var), 2) if paired_var > 0 else None,
        "z_unpaired": round(diff / math.sqrt(unpaired_var), 2) if unpaired_var > 0 else None,
    }


def _checkpoint(name: str) -> Path:
    from modeldeploy.tools.checkpoints import build

    return Path(build(name))


def _cpus(role: str, args: argparse.Namespace) -> frozenset[int] | None:
    """The CPUs local mode pins ``role`` to; ``--pin-swapped`` gives each arm the other's
    (is a difference the arm's, or its core's?)."""
    if not (args.pin or args.pin_swapped):
        return None
    other = {"stable": "canary", "canary": "stable"}
    return arm_cpus(other[role] if args.pin_swapped else role, usable_cpus(), 1)


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from modeldeploy.tools.demo.traffic import TrafficProcess, TrafficSettings

    calls_log = work / "calls.log"
    env = {**os.environ, "MODELDEPLOY_FAIRNESS_LOG": str(calls_log)}
    if args.no_pacing:
        env["MODELDEPLOY_FAIRNESS_NO_PACING"] = "1"
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}

    def start(argv: list[str], log: str, cpus: frozenset[int] | None = None) -> None:
        with open(work / log, "wb") as out:
            procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env))
        if cpus is not None:  # as local mode does it (``procs.start``)
            pin(procs[-1].pid, cpus)

    try:
        for role, name in (("stable", args.stable), ("canary", args.canary)):
            port = _free_port()
            start(
                [sys.executable, "-m", "modeldeploy.serving", "--model-dir",
                 str(_checkpoint(name)), "--role", role, "--deployment", "fairness",
                 "--host", "127.0.0.1", "--http-port", str(port), "--grpc-port", "0",
                 "--threads", "1"],
                f"{role}.log",
                _cpus(role, args),
            )  # fmt: skip
            urls[role] = f"http://127.0.0.1:{port}"
            _wait_ok(urls[role] + "/v2/health/ready")
        port = _free_port()
        start(
            [sys.executable, "-m", ROUTER_WRAPPER, "--stable", urls["stable"], "--canary",
             urls["canary"], "--weight", str(args.weight), "--paired-share", "100",
             "--pair-on-label-rate", str(args.rescores), "--deployment", "fairness",
             "--host", "127.0.0.1", "--port", str(port), "--seed", "1", "--expose-arm",
             *(["--score-both"] if args.score_both else [])],
            "router.log",
        )  # fmt: skip
        router = f"http://127.0.0.1:{port}"
        _wait_ok(router + "/healthz")
        if args.helper_niceness:  # as local mode starts its router (``procs.start``)
            lower(procs[-1].pid, args.helper_niceness)
        settings = TrafficSettings(
            rate=args.rate, workers=6, label_delay_s=2.0, poisson=not args.even
        )
        driver = TrafficProcess(
            router, "classifier", work_dir=work, settings=settings,
            lower_priority_by=args.helper_niceness,
        ).start()  # fmt: skip
        time.sleep(args.warmup)
        before = {role: _buckets(url) for role, url in urls.items()}
        t0, load0 = time.monotonic(), os.getloadavg()[0]
        time.sleep(args.seconds)
        after = {role: _buckets(url) for role, url in urls.items()}
        t1 = time.monotonic()
        driver.stop()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    if args.calls_log:  # every upstream call, for a per-request (paired) look
        args.calls_log.write_text(calls_log.read_text())
    calls = []
    for line in calls_log.read_text().splitlines():
        start_s, role, purpose, seconds, request_id = line.split()
        if t0 <= float(start_s) <= t1:
            calls.append((float(start_s), role, purpose, float(seconds), request_id))
    arms = {role: histogram_quantiles(before[role], after[role]) for role in urls}
    return {
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "output"
        },
        "load_average": [round(load0, 1), round(os.getloadavg()[0], 1)],
        "arms": arms,
        "p99_ratio": round(arms["canary"]["p99_ms"] / arms["stable"]["p99_ms"], 3),
        "router_calls": call_stats([call[:4] for call in calls]),
        **({"paired_tail": paired_tails(calls)} if args.score_both else {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy.tools.bench.serving.fairness")
    parser.add_argument("--stable", default="tiny")
    parser.add_argument("--canary", default="tiny-distilbert")
    parser.add_argument("--weight", type=float, default=50.0, help="percent to the canary")
    parser.add_argument("--rescores", type=float, default=20.0, help="pair-on-label rate")
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s offered")
    parser.add_argument("--seconds", type=float, default=45.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=0.0, help="traffic before the window")
    parser.add_argument("--even", action="store_true", help="evenly spaced arrivals")
    parser.add_argument("--no-pacing", action="store_true", help="router sends re-scores at once")
    parser.add_argument(
        "--score-both", action="store_true", help="the router's score-both mode (local mode's)"
    )
    parser.add_argument(
        "--pin", action="store_true", help="each predictor on a CPU of its own (local mode's)"
    )
    parser.add_argument(
        "--pin-swapped", action="store_true", help="as --pin, the canary on stable's CPU"
    )
    parser.add_argument(
        "--helper-niceness",
        type=int,
        default=HELPER_NICENESS,
        choices=range(NICE_MAX + 1),
        metavar=f"0..{NICE_MAX}",
        help="the router and the driver this many nice steps below the predictors "
        f"(local mode's default: {HELPER_NICENESS}; 0: one priority)",
    )
    parser.add_argument("--output", type=Path, help="append the result (one JSON line)")
    parser.add_argument(
        "--calls-log", type=Path, help="copy the router's per-call log (start role purpose s id)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fairness-") as work:
        result = measure(args, Path(work))
    line = json.dumps(result)
    print(line)
    if args.output:
        with open(args.output, "a") as out:
            out.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
