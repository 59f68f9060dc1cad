"""Chart value predictor.labelAuth reaches the operator, and names the Secret it creates."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import helm_python as helm
import pytest

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import Target
from modeldeploy.serving.auth import CONTROL_TOKEN_FILE, LABEL_TOKEN_FILE, MIN_TOKEN_CHARS
from modeldeploy.serving.contract.args import parse_predictor_args
from tests.support import admission as adm
from tests.unit.chart.test_chart import CHART, env_of, only, render
from tests.unit.chart.test_chart_predictor import settings_of


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def test_the_created_secret_is_the_one_predictors_mount_with_the_keys_they_read(
    chart: helm.Chart,
) -> None:
    docs = render(chart, {})
    secret = only(docs, "Secret")
    cfg = settings_of(docs)
    assert secret["metadata"]["name"] == cfg.label_auth_secret
    assert set(secret["data"]) == {LABEL_TOKEN_FILE, CONTROL_TOKEN_FILE}
    tokens = [base64.b64decode(v).decode() for v in secret["data"].values()]
    assert len(set(tokens)) == 2 and all(len(t) >= MIN_TOKEN_CHARS for t in tokens)


def test_custom_secret_and_mount_path_reach_the_predictor_pods(chart: helm.Chart) -> None:
    values = {
        "predictor": {
            "labelAuth": {"secretName": "team-tokens", "create": False, "mountPath": "/etc/md"}
        }
    }
    docs = render(chart, values)
    env = env_of(docs)
    assert env["MODELDEPLOY_PREDICTOR_LABEL_AUTH_SECRET"] == "team-tokens"
    assert not [d for d in docs if d["kind"] == "Secret"]  # create: false brings your own
    cfg = settings_of(docs)
    spec = parse_spec({"model": {"name": "m", "registryUri": "http://mlflow:5000"}})
    body = m.inference_service(Target("m", "ml", spec), VersionRef("1", "a", "s3://b/1"), cfg=cfg)
    pred = body["spec"]["predictor"]
    volume = {v["name"]: v for v in pred["volumes"]}[m.LABEL_AUTH_VOLUME]
    assert volume["secret"]["secretName"] == "team-tokens"
    options = parse_predictor_args(pred["containers"][0]["args"])
    assert str(options.label_token_file) == f"/etc/md/{LABEL_TOKEN_FILE}"
    assert adm.admit(body, adm.DEFAULT_FEATURES) == []
