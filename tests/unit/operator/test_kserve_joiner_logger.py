"""With a joiner configured, every InferenceService the operator writes logs to it: every
mode, runtime, placement and shape still passes KServe's CRD schema and the admission rules,
each predictor's logger URL names its own arm, python predictors leave labels to the joiner,
and the joiner's /metrics is scraped."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from modeldeploy.operator.platforms.kserve import KServePlatform
from modeldeploy.operator.settings import KServeSettings
from modeldeploy.serving.contract.joiner import EVENTS_PATH
from tests.support import admission as adm
from tests.unit.operator.test_kserve_manifests import (
    CASES,
    FEATURES,
    REFUSED,
    build,
    isvc_validator,  # noqa: F401  (the module-scoped fixture)
)
from tests.unit.operator.test_kserve_platform import CANARY, STABLE, FakeApi, target

EVENTS = "http://modeldeploy-joiner.modeldeploy.svc:8081"
METRICS = "http://modeldeploy-joiner.modeldeploy.svc:8080/metrics"


def predictors(body: dict[str, Any]) -> list[dict[str, Any]]:
    spec = body["spec"]
    return [spec["predictor"], *(c["predictor"] for c in spec.get("canary", []))]


@pytest.mark.parametrize("case", sorted(set(CASES) - REFUSED))
def test_every_manifest_with_the_logger_block_is_admitted_and_names_its_arm(
    case: str, request: pytest.FixtureRequest
) -> None:
    validator = request.getfixturevalue("isvc_validator")
    t, shape, features = CASES[case]
    cfg, knative = FEATURES[features]
    cfg = replace(cfg, joiner_events_url=EVENTS, joiner_metrics_url=METRICS)
    body = build(t, shape, cfg)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == []
    assert adm.admit(body, knative) == []
    for pred in predictors(body):
        logger = pred["logger"]
        # KServe's validateLogger (component.go:400-404): mode all, request or response.
        assert logger["mode"] == "all"
        url = urlsplit(logger["url"])
        assert f"{url.scheme}://{url.netloc}" == EVENTS and url.path == EVENTS_PATH
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        labels = pred["labels"]
        assert query == {"deployment": t.name, "role": labels["modeldeploy.io/role"],
                         "version": labels["modeldeploy.io/version"]}  # fmt: skip
        for container in pred.get("containers", []):
            assert "--labels-at-joiner" in container["args"]


def test_without_a_joiner_nothing_logs_and_predictors_keep_their_labels() -> None:
    cfg, _ = FEATURES["features-on"]
    t = CASES[next(iter(sorted(set(CASES) - REFUSED)))][0]
    for pred in predictors(build(t, "canary", cfg)):
        assert "logger" not in pred
        assert all("--labels-at-joiner" not in c["args"] for c in pred.get("containers", []))


def test_the_joiner_metrics_are_scraped_and_a_removed_joiner_is_written_away() -> None:
    api = FakeApi()
    settings = KServeSettings(joiner_events_url=EVENTS, joiner_metrics_url=METRICS)
    platform = KServePlatform(api, settings)
    t = target()
    platform.set_canary(t, STABLE, CANARY, 10)
    assert METRICS in platform.metrics_endpoints(t)
    assert api.writes == ["create"]
    KServePlatform(api, KServeSettings()).set_canary(t, STABLE, CANARY, 10)
    assert api.writes == ["create", "replace"]
    assert api.stored is not None and "logger" not in api.stored["spec"]["predictor"]


def test_the_settings_read_the_joiner_from_the_environment() -> None:
    env = {"MODELDEPLOY_JOINER_EVENTS_URL": EVENTS, "MODELDEPLOY_JOINER_METRICS_URL": METRICS}
    cfg = KServeSettings.from_env(env)
    assert (cfg.joiner_events_url, cfg.joiner_metrics_url) == (EVENTS, METRICS)
    assert KServeSettings.from_env({}).joiner_events_url == ""
