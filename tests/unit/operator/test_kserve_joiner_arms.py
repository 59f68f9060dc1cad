"""Where the joiner pairs: the arm URLs are published only once the canary serves at its own
URL, per deployment key, and withdrawn once the canary is decided."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.operator.api.status import CanaryState, Status
from modeldeploy.operator.executor import Executor
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.kserve_arms import REFRESH_S, ArmsConfigMap, arm_urls
from modeldeploy.operator.settings import KServeSettings
from tests.unit.operator.test_kserve_platform import CANARY, STABLE, target

SERVING: dict[str, Any] = {
    "observedGeneration": 2,
    "conditions": [{"type": "Ready", "status": "True"}],
    "components": {"predictor": {
        "latestCreatedRevision": "r2", "latestReadyRevision": "r2",
        "traffic": [{"tag": "prev", "percent": 90, "url": "http://prev-s.ml.example.com/"},
                    {"tag": "latest", "percent": 10, "latestRevision": True,
                     "url": "http://latest-s.ml.example.com"}]}},
}  # fmt: skip


def serverless(status: dict[str, Any]) -> dict[str, Any]:
    isvc = m.inference_service(target(), STABLE, CANARY, 10, cfg=KServeSettings())
    isvc["metadata"]["generation"] = 2
    isvc["status"] = status
    return isvc


def test_serverless_arms_are_the_prev_and_latest_tags() -> None:
    assert arm_urls(serverless(SERVING), target(), CANARY) == {
        "stable": "http://prev-s.ml.example.com",
        "canary": "http://latest-s.ml.example.com",
    }


@pytest.mark.parametrize(
    "why",
    ["canary revision not ready", "spec not observed", "no prev tag", "same url", "no canary"],
)
def test_serverless_arms_wait_until_latest_is_the_canary(why: str) -> None:
    status = copy.deepcopy(SERVING)
    pred = status["components"]["predictor"]
    isvc = serverless(status)
    if why == "canary revision not ready":  # "latest" is still stable's revision
        pred["latestCreatedRevision"] = "r3"
    elif why == "spec not observed":
        status["observedGeneration"] = 1
    elif why == "no prev tag":
        pred["traffic"] = pred["traffic"][1:]
    elif why == "same url":
        pred["traffic"][0]["url"] = pred["traffic"][1]["url"]
    else:
        isvc = m.inference_service(target(), STABLE, cfg=KServeSettings())
        isvc["status"] = status
    assert arm_urls(isvc, target(), CANARY) is None


def test_raw_deployment_arms_are_the_services_kserve_names() -> None:
    t = target(deploymentMode="RawDeployment")
    isvc = m.inference_service(t, STABLE, CANARY, 10, cfg=KServeSettings())
    assert arm_urls(isvc, t, CANARY) is None  # no canary status yet
    isvc["status"] = {"canaryStatuses": [{"name": m.canary_name(CANARY), "ready": False}]}
    assert arm_urls(isvc, t, CANARY) is None
    isvc["status"]["canaryStatuses"][0]["ready"] = True
    assert arm_urls(isvc, t, CANARY) == {
        "stable": "http://sentiment-predictor.ml.svc",
        "canary": f"http://sentiment-{m.canary_name(CANARY)}-predictor.ml.svc",
    }


class CoreApi:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any], str]] = []

    def patch_namespaced_config_map(self, name: str, namespace: str, body: dict[str, Any],
                                    _content_type: str = "") -> None:  # fmt: skip
        self.patches.append((namespace, name, body, _content_type))


def test_one_key_is_merge_patched_and_refreshed_and_removed_once() -> None:
    now = [0.0]
    api = CoreApi()
    cm = ArmsConfigMap(api, "sys/arms", clock=lambda: now[0])
    urls = {"stable": "http://s", "canary": "http://c"}
    cm.publish(target(), STABLE, CANARY, urls)
    cm.publish(target(), STABLE, CANARY, urls)
    assert len(api.patches) == 1
    namespace, name, body, ctype = api.patches[0]
    assert (namespace, name, ctype) == ("sys", "arms", "application/merge-patch+json")
    assert list(body["data"]) == ["ml.sentiment.json"]
    now[0] = REFRESH_S + 1
    cm.publish(target(), STABLE, CANARY, urls)  # a ConfigMap replaced by hand gets it back
    cm.remove(target())
    cm.remove(target())
    assert [p[2]["data"]["ml.sentiment.json"] is None for p in api.patches] == [
        False, False, True
    ]  # fmt: skip
    with pytest.raises(ValueError, match="namespace"):
        ArmsConfigMap(api, "arms")


class Publisher:
    """A platform that records what the executor asks it to publish."""

    def __init__(self) -> None:
        self.published: list[tuple[str | None, str | None]] = []

    def reassert_traffic(self, target: Any, weight: int) -> None:
        return None

    def publish_arms(self, target: Any, stable: Any, canary: Any, probe: Any = None) -> None:
        self.published.append((stable and stable.version, canary and canary.version))


def test_the_executor_publishes_an_undecided_canary_once_a_tick_and_withdraws_it() -> None:
    platform = Publisher()
    executor = Executor(platform, registry=None, emit=lambda *_: None)  # type: ignore[arg-type]
    canary = CanaryState("2", weight=10)
    for after in (
        Status("Progressing", stable=STABLE, canary=canary),
        Status("RollingBack", stable=STABLE, canary=CanaryState("2", outcome="RolledBack")),
        Status("Stable", stable=STABLE),
    ):
        executor.run(target(), after, after, [])
        executor.run(target(), after, after, [], reassert=False)  # a single action: not here
    assert platform.published == [("1", "2"), ("1", None), ("1", None)]
