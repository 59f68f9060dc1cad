"""Real Prometheus scraping real serving processes, read back through both providers.

Stable serves ``tiny`` (version 1) and canary ``tiny-distilbert`` (version 2), each a real
``python -m modeldeploy.serving`` process; a real router (50/50, every canary request also
scored by stable) sits in front of them, and a real Prometheus scrapes all three every
second. The test sends a known set of real review sentences (v1 and v2, single texts and
batches, one malformed body per arm, and traffic through the router), posts the true label
of every item as feedback, and then checks that ``PrometheusProvider`` reports exactly
what the test can count from the responses: requests by outcome, labelled correct/total,
latency histogram counts, and paired outcomes. ``ScrapeProvider`` on the processes' own
``/metrics`` must agree with it exactly, source by source.

Counts are measured as a window (``snapshot().since(baseline)``) after a warm-up, so the
baseline handling of both providers is exercised against live counters too.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldeploy.operator.analysis import PairedCounts
from modeldeploy.operator.metrics import AnalysisTarget, MetricsError, Snapshot
from modeldeploy.operator.metrics.prometheus import PrometheusProvider
from modeldeploy.operator.metrics.scrape import ScrapeProvider
from modeldeploy.operator.metrics.snapshot import SourceCounters
from modeldeploy.serving.contract.latency import latency_bucket_edges
from modeldeploy.serving.router.pairing import paired_outcome
from modeldeploy.tools.checkpoints import build, load_split
from tests.support.processes import free_port, http_ok

pytestmark = pytest.mark.slow

PY = sys.executable
DASHBOARD = Path(__file__).parents[3] / "charts/modeldeploy/files/grafana-dashboard.json"
DEPLOYMENT = "real-serving"
TARGET = AnalysisTarget(DEPLOYMENT, stable_version="1", canary_version="2")
MODEL = "m"
DIRECT_REQUESTS = 8  # per arm: even ones v1 with one text, odd ones v2 with two texts
ROUTED_REQUESTS = 16  # through the router, one text each


def texts_per_request(i: int) -> int:
    return 1 if i % 2 == 0 else 2


def serving_panel_queries(exported: set[str]) -> dict[str, list[str]]:
    """The dashboard's queries, by panel title, that read only series in ``exported``
    (what the serving processes' own ``/metrics`` list), Grafana's variables filled in."""
    variables = {"$deployment": DEPLOYMENT, "$__rate_interval": "1m", "$window": "5m",
                 "$__range": "5m", "$name": ".*"}  # fmt: skip
    out: dict[str, list[str]] = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        exprs = [t["expr"] for t in panel.get("targets", [])]
        used = {m for e in exprs for m in re.findall(r"\bmodeldeploy[_:][a-z0-9_:]+", e)}
        if exprs and used <= exported:
            for name, value in variables.items():
                exprs = [e.replace(name, value) for e in exprs]
            out[panel["title"]] = exprs
    return out


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.25)


def predict(
    client: httpx.Client, base: str, texts: list[str], protocol: str
) -> tuple[list[tuple[str, int]], dict[str, str]]:
    """Send ``texts`` in one request; (item id, predicted class index) per text, headers."""
    if protocol == "v1":
        response = client.post(f"{base}/v1/models/{MODEL}:predict", json={"instances": texts})
        assert response.status_code == 200, response.text
        body = response.json()
        items = [(p["id"], int(p["label_index"])) for p in body["predictions"]]
        version = body["model_version"]
    else:
        tensor = {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}
        response = client.post(f"{base}/v2/models/{MODEL}/infer", json={"inputs": [tensor]})
        assert response.status_code == 200, response.text
        body = response.json()
        outputs = {o["name"]: o["data"] for o in body["outputs"]}
        ids = [body["id"]] if len(texts) == 1 else [f"{body['id']}/{k}" for k in range(len(texts))]
        items = list(zip(ids, (int(x) for x in outputs["label_index"]), strict=True))
        version = body["model_version"]
    assert len(items) == len(texts)
    return items, {"model_version": str(version), **response.headers}


def feedback(client: httpx.Client, base: str, item_id: str, label: int) -> dict[str, Any]:
    response = client.post(f"{base}/v1/feedback", json={"request_id": item_id, "label": label})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["counted"] is True, body
    return body


def by_source(snapshot: Snapshot, prometheus: bool) -> dict[str, SourceCounters]:
    """Sources keyed by ``host:port`` for either provider; empty sources dropped.

    CPU seconds are left out: a process's CPU time grows between any two reads (it is its
    clock, read at scrape), so the two providers can never hold the same value; the test
    checks it apart (``without_cpu``).
    """
    keyed = {}
    for name, counters in without_cpu(snapshot).sources.items():
        if counters.is_empty:
            continue
        key = name.rsplit("/", 1)[-1] if prometheus else name.split("//", 1)[1].split("/", 1)[0]
        keyed[key] = counters
    return keyed


def without_cpu(snapshot: Snapshot) -> Snapshot:
    def strip(arm: Any) -> Any:
        return None if arm is None else replace(arm, cpu_seconds=None)

    return Snapshot(
        {
            name: replace(counters, stable=strip(counters.stable), canary=strip(counters.canary))
            for name, counters in snapshot.sources.items()
        },
        snapshot.taken_at,
    )


def test_prometheus_provider_reads_what_real_serving_processes_counted(
    process_starter: Callable[..., Any], tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the Debian prometheus binary is not installed: run `make system-deps`")

    ports = {role: free_port() for role in ("stable", "canary", "router", "prometheus")}
    url = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
    config = tmp_path / "prometheus.yml"
    targets = ", ".join(f"'127.0.0.1:{ports[r]}'" for r in ("stable", "canary", "router"))
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: serving\n    static_configs:\n"
        f"      - targets: [{targets}]\n"
    )
    checkpoints = {"stable": build("tiny"), "canary": build("tiny-distilbert")}

    def start_predictor(role: str) -> None:
        version = {"stable": "1", "canary": "2"}[role]
        argv = [PY, "-m", "modeldeploy.serving", "--model-dir", str(checkpoints[role]),
                "--name", MODEL, "--deployment", DEPLOYMENT, "--role", role,
                "--model-version", version, "--http-port", str(ports[role]),
                "--grpc-port", "0", "--threads", "1",
                "--latency-warmup-requests", "0",
                "--response-detail", "full"]  # fmt: skip  # answers name the version
        ready = f"{url[role]}/v2/health/ready"
        process_starter(f"predictor-{role}", argv, lambda: http_ok(ready), timeout=120)

    def start_prometheus() -> None:
        argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}"]  # fmt: skip
        ready = f"{url['prometheus']}/-/ready"
        process_starter("prometheus", argv, lambda: http_ok(ready), timeout=60)

    # The three slow starts overlap; a failure of any of them is raised here.
    with ThreadPoolExecutor(3) as pool:
        starts = [pool.submit(start_predictor, "stable"), pool.submit(start_predictor, "canary")]
        starts.append(pool.submit(start_prometheus))
        for started in starts:
            started.result()
    process_starter(
        "router",
        [PY, "-m", "modeldeploy.serving.router", "--stable", url["stable"],
         "--canary", url["canary"], "--weight", "50", "--paired-share", "100",
         "--pair-on-label-rate", "0",  # only share pairing: stable-served labels stay unpaired
         "--deployment", DEPLOYMENT, "--port", str(ports["router"]), "--seed", "5",
         "--response-detail", "full"],
        lambda: http_ok(f"{url['router']}/healthz"),
    )  # fmt: skip

    scrape = ScrapeProvider([f"{url[r]}/metrics" for r in ("stable", "canary", "router")])
    prometheus = PrometheusProvider(url["prometheus"])
    assert prometheus.is_online() and scrape.is_online()

    def settled(expected_requests: dict[str, int]) -> tuple[Snapshot, Snapshot]:
        """(scrape, Prometheus) snapshots once both hold every request sent so far.

        ``expected_requests`` are lifetime totals per arm. A predictor counts a request
        after its response is sent, so the direct scrape is polled first; then Prometheus
        must hold exactly the scraped values, source by source.
        """
        holder: dict[str, Snapshot] = {}

        def scraped() -> bool:
            holder["scrape"] = scrape.snapshot(TARGET)
            obs = holder["scrape"].observations()
            got = {"stable": obs.stable.requests, "canary": obs.canary.requests}
            return all(sum(got[a].values()) == n for a, n in expected_requests.items())

        def scraped_by_prometheus() -> bool:
            try:
                holder["prometheus"] = prometheus.snapshot(TARGET)
            except MetricsError:
                return False
            return by_source(holder["prometheus"], True) == by_source(holder["scrape"], False)

        try:
            wait_for(scraped, "the predictors to count every request", timeout=15)
            wait_for(scraped_by_prometheus, "Prometheus to scrape the final values", timeout=30)
        except TimeoutError as exc:
            seen = {k: by_source(v, k == "prometheus") for k, v in holder.items()}
            raise AssertionError(f"{exc}; expected {expected_requests}; saw {seen}") from exc
        return holder["scrape"], holder["prometheus"]

    split = load_split("test")
    texts, labels = list(split.texts), [int(y) for y in split.labels]
    per_arm = sum(texts_per_request(i) for i in range(DIRECT_REQUESTS))
    assert len(texts) >= 2 * per_arm + ROUTED_REQUESTS + 2

    with httpx.Client(timeout=30.0, trust_env=False) as client:
        # --- warm-up (not in the window): one request per arm, no labels ----------------
        warm = texts[-2:]
        for k, role in enumerate(("stable", "canary")):
            predict(client, url[role], [warm[k]], "v1")
        scrape_base, prometheus_base = settled({"stable": 1, "canary": 1})

        # --- the window: direct traffic to each arm, labelled by feedback to the arm ----
        correct = {"stable": 0, "canary": 0}
        labelled = {"stable": 0, "canary": 0}
        ok = {"stable": 0, "canary": 0}
        cursor = 0
        for role in ("stable", "canary"):
            for i in range(DIRECT_REQUESTS):
                n = texts_per_request(i)
                batch = list(range(cursor, cursor + n))
                cursor += n
                items, meta = predict(
                    client, url[role], [texts[j] for j in batch], "v1" if i % 2 == 0 else "v2"
                )
                assert meta["model_version"] == {"stable": "1", "canary": "2"}[role]
                ok[role] += 1
                for (item_id, predicted), j in zip(items, batch, strict=True):
                    reply = feedback(client, url[role], item_id, labels[j])
                    assert reply["correct"] == (predicted == labels[j])
                    correct[role] += predicted == labels[j]
                    labelled[role] += 1
            # one malformed body per arm: a bad_input request, timed like the others
            bad = client.post(
                f"{url[role]}/v1/models/{MODEL}:predict",
                content=b"{not json",
                headers={"content-type": "application/json"},
            )
            assert bad.status_code == 400, bad.text

        # --- through the router: labels go to the router, which forwards and pairs ------
        paired = dict.fromkeys(("both_correct", "stable_only", "canary_only", "both_wrong"), 0)
        routed = {"stable": 0, "canary": 0}
        for j in range(cursor, cursor + ROUTED_REQUESTS):
            [(item_id, predicted)], meta = predict(client, url["router"], [texts[j]], "v1")
            role = meta["x-modeldeploy-arm"]
            routed[role] += 1
            reply = feedback(client, url["router"], item_id, labels[j])
            arms = reply["arms"]
            assert arms[role]["response"]["correct"] == (predicted == labels[j])
            stable_right = bool(arms["stable"]["response"]["correct"])
            correct["stable"] += stable_right
            labelled["stable"] += 1
            ok["stable"] += 1
            if role == "canary":  # stable scored it too (paired share 100%)
                canary_right = predicted == labels[j]
                correct["canary"] += canary_right
                labelled["canary"] += 1
                ok["canary"] += 1
                outcome = paired_outcome(stable_right, canary_right)
                paired[outcome] += 1
                assert [p["outcome"] for p in reply["paired"]] == [outcome]
            else:
                assert set(arms) == {"stable"} and reply["paired"] == []
        assert 0 < routed["canary"] < ROUTED_REQUESTS, routed

    total = {arm: ok[arm] + 1 for arm in ok}  # + the malformed body
    scrape_now, prometheus_now = settled({arm: n + 1 for arm, n in total.items()})  # + warm-up
    from_prometheus = prometheus_now.since(prometheus_base).observations()

    # --- Prometheus reports what the test sent ---------------------------------------------
    for arm, got in (("stable", from_prometheus.stable), ("canary", from_prometheus.canary)):
        assert dict(got.requests) == {"ok": ok[arm], "bad_input": 1, "error": 0}, arm
        assert (got.labelled_correct, got.labelled_total) == (correct[arm], labelled[arm]), arm
        assert got.nan_outputs == 0
        assert got.latency is not None and got.latency.count == total[arm], arm
        assert got.latency.bounds[-1] == float("inf")
        assert len(got.latency.bounds) == len(latency_bucket_edges()) + 1
    assert from_prometheus.paired == PairedCounts(**paired)
    assert labelled == {"stable": per_arm + ROUTED_REQUESTS, "canary": per_arm + routed["canary"]}

    # --- CPU seconds: each arm's process worked in the window, and both providers read its
    # lifetime CPU time (at different moments, so not the same value) ----------------------
    for arm in ("stable", "canary"):
        window_cpu = getattr(from_prometheus, arm).cpu_seconds
        assert window_cpu is not None and window_cpu > 0, arm
        for lifetime in (scrape_now.observations(), prometheus_now.observations()):
            assert getattr(lifetime, arm).cpu_seconds > window_cpu, arm  # + load and warm-up

    # --- and the direct scrape agrees exactly otherwise, window and lifetime ----------------
    scrape_now, prometheus_now = without_cpu(scrape_now), without_cpu(prometheus_now)
    prometheus_base, scrape_base = without_cpu(prometheus_base), without_cpu(scrape_base)
    from_prometheus = prometheus_now.since(prometheus_base).observations()
    assert scrape_now.since(scrape_base).observations() == from_prometheus
    assert prometheus_now.observations() == scrape_now.observations()
    restored = Snapshot.from_dict(prometheus_base.to_dict())  # as kept in a resource status
    assert prometheus_now.since(restored).observations() == from_prometheus

    # --- the dashboard's serving panels, evaluated by this Prometheus on these processes --
    exported: set[str] = set()
    for role in ("stable", "canary", "router"):
        text = httpx.get(f"{url[role]}/metrics", trust_env=False).text
        exported |= set(re.findall(r"^(modeldeploy_[a-z0-9_]+)", text, re.M))
    panels = serving_panel_queries(exported)
    capacity = ("Model busy share per arm", "Forward pass time per arm",
                "Rows per forward pass per arm", "Shed requests per arm")  # fmt: skip
    assert set(capacity) | {"P99 latency per version", "Live accuracy per arm"} <= set(panels)

    def values(expr: str) -> dict[tuple[str, str], float]:
        answer = httpx.get(
            f"{url['prometheus']}/api/v1/query", params={"query": expr}, trust_env=False
        ).json()
        assert answer["status"] == "success", (expr, answer)
        return {
            (r["metric"].get("model_version", ""), r["metric"].get("role", "")): float(
                r["value"][1]
            )
            for r in answer["data"]["result"]
        }

    for title, exprs in panels.items():
        for expr in exprs:
            assert values(expr), f"{title}: {expr} is empty"
    arms = {("1", "stable"), ("2", "canary")}
    (busy,) = panels["Model busy share per arm"]
    assert set(values(busy)) == arms and all(0 < v <= 1 for v in values(busy).values())
    (rows,) = panels["Rows per forward pass per arm"]
    assert all(v >= 1 for v in values(rows).values())
    p50, p99 = panels["Forward pass time per arm"]
    assert all(0 < v <= values(p99)[arm] for arm, v in values(p50).items())
    (shed,) = panels["Shed requests per arm"]
    assert set(values(shed)) == arms and set(values(shed).values()) == {0.0}
