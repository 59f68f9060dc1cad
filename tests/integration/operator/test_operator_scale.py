"""The operator at scale, short: registry calls per poll interval do not grow with followers.

The benchmark's harness (``modeldeploy.tools.bench.operator_scale``) runs the real
``modeldeploy operator run`` (kopf, nop platform) against the test suite's faithful API
emulator and the session's real MLflow behind a counting proxy, with 5 and then 20
ModelDeployments of one model. What is asserted is behaviour, not timing: MLflow sees the
same handful of requests per watch interval (one poll of the model) whether 5 or 20
ModelDeployments tick every second, and a moved alias reaches all 20 after one poll.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.tools.bench import operator_scale
from tests.support.kube_emulator import for_modeldeploy, serve_in_thread

# One poll: the health check, the model (its aliases), one page of versions; the
# benchmark's window edges may catch one poll more or less.
POLL_CALLS = 3


def statuses(kube_url: str) -> list[dict]:
    with urllib.request.urlopen(kube_url + operator_scale.MD_PATH, timeout=10) as reply:
        return [item.get("status") or {} for item in json.loads(reply.read())["items"]]


def test_mlflow_calls_per_interval_do_not_grow_with_modeldeployments(
    mlflow_server, tmp_path: Path
) -> None:
    operator_scale.publish_model(mlflow_server.url, tmp_path)
    proxy = operator_scale.CountingProxy(mlflow_server.url)
    with serve_in_thread(for_modeldeploy()) as kube_url:
        operator = operator_scale.start_operator(kube_url, proxy.url, tmp_path, 1.0, 1.0)
        try:
            rows = operator_scale.measure(
                kube_url,
                proxy,
                operator,
                (5, 20),
                tick_s=1.0,
                watch_s=1.0,
                window_s=8.0,
                settle_s=2.0,
                progress=lambda message: None,
            )
            few, many = rows
            assert many["ticks_per_minute"] > few["ticks_per_minute"]  # more ticks ...
            for row in rows:  # ... and the same registry cost: one poll per interval
                per_interval = row["mlflow_calls_per_watch_interval"]
                assert per_interval <= POLL_CALLS * 1.5, row
            endpoints = set(many["mlflow_calls_per_minute_by_endpoint"])
            assert endpoints <= {
                "GET /health",
                "GET /api/2.0/mlflow/registered-models/get",
                "GET /api/2.0/mlflow/model-versions/search",
                "GET /api/2.0/mlflow/model-versions/get",
            }, endpoints

            client = MlflowRegistry(mlflow_server.url)
            files = tmp_path / "v2"
            files.mkdir()
            (files / "config.json").write_text("{}")
            version = client.create_version(operator_scale.MODEL, files, tags={}).version
            client.set_alias(operator_scale.MODEL, "challenger", version)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                seen = [(s.get("canary") or {}).get("version") for s in statuses(kube_url)]
                if seen == [version] * 20:
                    break
                time.sleep(0.5)
            assert seen == [version] * 20, seen
        finally:
            operator.process.stop()
            proxy.close()
