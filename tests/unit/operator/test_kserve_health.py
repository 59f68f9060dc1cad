"""KServe health: the canary's readiness and its reason come from the ISVC conditions."""

from __future__ import annotations

from modeldeploy.operator.platforms.kserve import KServePlatform, not_ready_reason
from modeldeploy.operator.settings import KServeSettings
from tests.unit.operator.test_kserve_platform import CANARY, STABLE, FakeApi, target

FAILED = [
    {"type": "PredictorReady", "status": "False", "reason": "RevisionFailed",
     "message": "Revision sentiment-predictor-00002 failed: CrashLoopBackOff"},
    {"type": "Ready", "status": "False"},
]  # fmt: skip


def test_no_isvc_is_a_stable_arm_not_ready() -> None:
    health = KServePlatform(FakeApi(), KServeSettings()).health(target())
    assert not health["stable"].ready and "canary" not in health


def test_a_canary_revision_failing_is_not_ready_with_kserve_s_reason() -> None:
    api = FakeApi()
    platform = KServePlatform(api, KServeSettings())
    t = target()
    platform.set_canary(t, STABLE, CANARY, 10)
    assert api.stored is not None
    api.stored["status"]["conditions"] = FAILED
    health = platform.health(t)
    assert health["stable"].ready and not health["canary"].ready
    assert not health["canary"].gone  # the machine's bound decides, not one reading
    assert health["canary"].reason == (
        "PredictorReady: RevisionFailed: Revision sentiment-predictor-00002 failed: "
        "CrashLoopBackOff"
    )
    api.stored["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert platform.health(t)["canary"].ready


def test_stable_alone_reports_no_canary() -> None:
    api = FakeApi()
    platform = KServePlatform(api, KServeSettings())
    platform.ensure(target(), STABLE)
    assert set(platform.health(target())) == {"stable"}


def test_an_unobserved_spec_says_so() -> None:
    isvc = {"metadata": {"generation": 4}, "status": {"observedGeneration": 3}}
    assert not_ready_reason(isvc) == "KServe has not observed the latest spec yet"
