"""One Platform contract, run against every platform: ``nop``, ``kserve`` (a fake
CustomObjectsApi with an instantly converging KServe controller) and ``local`` (fake
processes: no model is loaded, but every process-table, router and restart path runs).

The executor and the metrics windows rely on exactly these behaviours, so a platform
that passes here can be swapped in without touching reconcile.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.local import platform as local_platform
from modeldeploy.operator.local import procs
from modeldeploy.operator.local.state import StateDir
from modeldeploy.operator.platforms.base import Platform, Target
from modeldeploy.operator.platforms.kserve import KServePlatform
from modeldeploy.operator.platforms.nop import NopPlatform

TARGET = Target(
    "sentiment",
    "ml",
    parse_spec({"model": {"name": "m", "registryUri": "http://registry"}}),
    registry_uri="http://registry",
)
V1, V2 = VersionRef("1", "h1", "models:/m-1"), VersionRef("2", "h2", "models:/m-2")


class FakeKServe:
    """CustomObjectsApi for InferenceServices, with KServe's controller reduced to: every
    write bumps the generation and is served at once (status traffic and URLs)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes = 0

    def _converge(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta["generation"] = int(meta.get("generation") or 0) + 1
        meta["resourceVersion"] = str(self.writes)
        predictor = (obj.get("spec") or {}).get("predictor") or {}
        name, ns = meta["name"], meta.get("namespace", "ml")
        base = f"http://{name}-predictor.{ns}.svc"
        if "canaryTrafficPercent" in predictor:
            pct = int(predictor["canaryTrafficPercent"])
            traffic = [
                {"latestRevision": True, "percent": pct, "url": f"http://latest-{base[7:]}"},
                {"latestRevision": False, "percent": 100 - pct, "url": f"http://prev-{base[7:]}"},
            ]
        else:
            traffic = [{"latestRevision": True, "percent": 100, "url": base}]
        obj["status"] = {
            "observedGeneration": meta["generation"],
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {"predictor": {"traffic": traffic}},
        }
        return obj

    def get_namespaced_custom_object(self, group, version, ns, plural, name):
        try:
            return copy.deepcopy(self.objects[(ns, name)])
        except KeyError:
            raise ApiException(status=404, reason="Not Found") from None

    def create_namespaced_custom_object(self, group, version, ns, plural, body):
        self.writes += 1
        self.objects[(ns, body["metadata"]["name"])] = self._converge(copy.deepcopy(body))

    def replace_namespaced_custom_object(self, group, version, ns, plural, name, body):
        self.writes += 1
        old = self.objects[(ns, name)]
        body = copy.deepcopy(body)
        body["metadata"]["generation"] = old["metadata"]["generation"]
        self.objects[(ns, name)] = self._converge(body)

    def delete_namespaced_custom_object(self, group, version, ns, plural, name):
        if self.objects.pop((ns, name), None) is None:
            raise ApiException(status=404, reason="Not Found")


class FakeProcesses:
    """Stands in for ``procs`` start/stop/health and the router's weights endpoint."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.running: set[int] = set()
        self.weights: dict[int, float] = {}
        self.next_port = 40000
        monkeypatch.setattr(procs, "start", self.start)
        monkeypatch.setattr(procs, "stop", self.stop)
        monkeypatch.setattr(procs, "http_ok", self.http_ok)
        monkeypatch.setattr(procs, "free_port", self.free_port)
        monkeypatch.setattr(local_platform, "_http_json", self.http_json)

    def free_port(self) -> int:
        self.next_port += 1
        return self.next_port

    def start(self, name: str, argv: list[str], *, port: int, labels=None, **_: Any):
        self.running.add(port)
        if "--weight" in argv:
            self.weights[port] = float(argv[argv.index("--weight") + 1])
        return procs.ProcRecord(name, os.getpid(), port, "", dict(labels or {}))

    def stop(self, record: procs.ProcRecord, timeout: float = 15.0) -> None:
        self.running.discard(record.port)
        self.weights.pop(record.port, None)

    def http_ok(self, url: str, timeout: float = 2.0) -> bool:
        return int(url.split(":")[2].split("/")[0]) in self.running

    def http_json(
        self, method: str, url: str, body: Any = None, headers: Any = None, timeout: float = 10
    ) -> Any:
        port = int(url.split(":")[2].split("/")[0])
        if port not in self.running:
            raise OSError("connection refused")
        if method == "PUT" and url.endswith("/router/arms"):
            self.weights[port] = float(body.get("weight", 0.0)) if body["canary"] else 0.0
        elif method == "PUT":
            self.weights[port] = float(body["canary"])
        return {"canary": self.weights.get(port, 0.0)}


@pytest.fixture(params=["nop", "kserve", "local"])
def platform(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    if request.param == "nop":
        yield NopPlatform()
    elif request.param == "kserve":
        yield KServePlatform(FakeKServe())
    else:
        FakeProcesses(monkeypatch)
        yield local_platform.LocalPlatform(StateDir(tmp_path / "state"))


def test_nothing_served_before_ensure(platform: Platform) -> None:
    assert platform.read_traffic(TARGET) is None
    assert platform.is_ready(TARGET) in (False, True)  # nop is always ready
    platform.clean_up(TARGET)  # cleaning up nothing is fine


def test_ensure_serves_stable_alone_and_is_idempotent(platform: Platform) -> None:
    platform.ensure(TARGET, V1)
    platform.ensure(TARGET, V1)
    assert platform.read_traffic(TARGET) is None
    assert platform.is_ready(TARGET) is True


def test_canary_weight_is_what_was_asked(platform: Platform) -> None:
    platform.ensure(TARGET, V1)
    platform.set_canary(TARGET, V1, V2, 10)
    assert platform.read_traffic(TARGET) == 10
    platform.set_traffic(TARGET, V1, V2, 50)
    assert platform.read_traffic(TARGET) == 50
    platform.set_traffic(TARGET, V1, V2, 0)
    assert platform.read_traffic(TARGET) == 0
    assert platform.is_ready(TARGET) is True


def test_health_names_each_served_arm(platform: Platform) -> None:
    platform.ensure(TARGET, V1)
    assert {role: h.ready for role, h in platform.health(TARGET).items()} == {"stable": True}
    platform.set_canary(TARGET, V1, V2, 10)
    health = platform.health(TARGET)
    assert {role: h.ready for role, h in health.items()} == {"stable": True, "canary": True}
    assert not any(h.gone for h in health.values())


def test_promote_leaves_the_new_version_alone(platform: Platform) -> None:
    platform.ensure(TARGET, V1)
    platform.set_canary(TARGET, V1, V2, 50)
    platform.promote(TARGET, V2)
    platform.promote(TARGET, V2)  # a repeated tick after a crash
    assert platform.read_traffic(TARGET) is None
    assert platform.is_ready(TARGET) is True


def test_rollback_is_ensure_stable(platform: Platform) -> None:
    platform.ensure(TARGET, V1)
    platform.set_canary(TARGET, V1, V2, 25)
    platform.ensure(TARGET, V1)
    assert platform.read_traffic(TARGET) is None


def test_clean_up_removes_everything_and_repeats_safely(platform: Platform) -> None:
    platform.ensure(TARGET, V1)
    platform.set_canary(TARGET, V1, V2, 25)
    platform.clean_up(TARGET)
    platform.clean_up(TARGET)
    assert platform.read_traffic(TARGET) is None
    assert platform.metrics_endpoints(TARGET) == []


def test_metrics_endpoints_are_metrics_urls_of_what_serves(platform: Platform) -> None:
    assert platform.metrics_endpoints(TARGET) == []
    platform.ensure(TARGET, V1)
    single = platform.metrics_endpoints(TARGET)
    platform.set_canary(TARGET, V1, V2, 25)
    both = platform.metrics_endpoints(TARGET)
    assert all(url.startswith("http") and url.endswith("/metrics") for url in single + both)
    if isinstance(platform, NopPlatform):
        assert single == both == []  # nothing is served, nothing to scrape
    else:
        assert single and len(both) > len(single)  # the canary's process is scraped too
