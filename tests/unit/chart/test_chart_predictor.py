"""Chart values for predictor pods: images, registry credentials, Knative features.

Rendered with Helm's own SDK (values.schema.json enforced) and read back through the
operator's real settings parser, so a value that does not reach the operator fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.settings import KServeSettings
from tests.support import admission as adm
from tests.unit.chart.test_chart import CHART, KUBE_VERSION, container, env_of, only, render


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def settings_of(docs: list[dict[str, Any]]) -> KServeSettings:
    env = env_of(docs)
    return KServeSettings.from_env({k: v for k, v in env.items() if isinstance(v, str)})


def test_default_predictor_images_are_the_operators_defaults(chart: helm.Chart) -> None:
    # Everything but the joiner's URLs, which only the chart knows (on by default there).
    assert settings_of(render(chart, {"joiner": {"enabled": False}})) == KServeSettings()
    with_joiner = settings_of(render(chart, {}))
    assert with_joiner.joiner_events_url and with_joiner.joiner_arms_configmap
    assert (
        replace(with_joiner, joiner_events_url="", joiner_metrics_url="", joiner_arms_configmap="")
        == KServeSettings()
    )


def test_knative_features_and_credentials_reach_the_operator(chart: helm.Chart) -> None:
    values = {
        "registry": {"credentialsSecret": "mlflow-creds"},
        "predictor": {
            "serviceAccountName": "predictor",
            "image": {"repository": "r/p", "tag": "9"},
        },
        "knative": {
            "features": {
                "podspecSecurityContext": True,
                "podspecNodeSelector": True,
                "podspecTolerations": True,
            }
        },
    }
    docs = render(chart, values)
    kubernetes_validate.validate(only(docs, "Deployment"), KUBE_VERSION, strict=True)
    cfg = settings_of(docs)
    assert cfg.credentials_secret == "mlflow-creds"  # defaults to registry.credentialsSecret
    assert cfg.service_account == "predictor"
    assert cfg.predictor_image == "r/p:9"
    assert (cfg.knative_security_context, cfg.knative_node_selector) == (True, True)
    assert cfg.knative_tolerations and cfg.knative_emptydir
    # The operator's own pod gets the Secret by reference too, never as literal values.
    assert container(docs)["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]


def test_a_predictor_secret_can_differ_from_the_operators(chart: helm.Chart) -> None:
    values = {
        "registry": {"credentialsSecret": "operator-creds"},
        "predictor": {"credentialsSecret": "predictor-creds"},
    }
    assert settings_of(render(chart, values)).credentials_secret == "predictor-creds"


def test_rendered_settings_give_admitted_predictors(chart: helm.Chart) -> None:
    """From chart values to an InferenceService the webhooks admit, with the same features."""
    from modeldeploy.operator.api.status import VersionRef
    from modeldeploy.operator.api.types import parse_spec
    from modeldeploy.operator.platforms.base import Target

    features = {"podspecNodeSelector": True, "podspecTolerations": True}
    cfg = settings_of(render(chart, {"knative": {"features": features}}))
    spec = parse_spec(
        {
            "model": {"name": "m", "registryUri": "http://mlflow:5000"},
            "resources": {"gpu": 1, "nodeSelector": {"pool": "gpu"}, "tolerations": [{"key": "g"}]},
        }
    )
    body = m.inference_service(Target("m", "ml", spec), VersionRef("1", "a", "s3://b/1"), cfg=cfg)
    knative = adm.KnativeFeatures(podspec_nodeselector=adm.ENABLED, podspec_tolerations=adm.ENABLED)
    assert adm.admit(body, knative) == []
    assert adm.admit(body, adm.DEFAULT_FEATURES)  # the same object on stock Knative is refused


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"knative": {"features": {"podspecNodeSelector": "yes"}}}, "/knative/features"),
        ({"knative": {"features": {"podspecAffinity": True}}}, "/knative/features"),
        ({"predictor": {"serviceAccountName": "Not_Valid"}}, "/predictor/serviceAccountName"),
        ({"predictor": {"image": {"repository": ""}}}, "/predictor/image"),
    ],
    ids=["not-boolean", "unknown-feature", "bad-service-account", "empty-image-repository"],
)
def test_schema_refuses_bad_predictor_values(
    chart: helm.Chart, values: dict[str, Any], where: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as err:
        chart.render(values, name="md", namespace="modeldeploy-system")
    assert "schema" in str(err.value) and where in str(err.value)
