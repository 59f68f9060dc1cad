"""The chart's joiner: Deployment, Service, arms ConfigMap and NetworkPolicy, valid Kubernetes;
the operator is told where it is; only predictor pods reach its events port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from modeldeploy.operator import rbac
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.settings import KServeSettings
from modeldeploy.serving.joiner.__main__ import build_parser, config_from
from modeldeploy.serving.joiner.pairing import parse_arms
from tests.unit.chart.chart_files import CHART
from tests.unit.chart.test_chart import KUBE_VERSION, render
from tests.unit.operator.test_kserve_platform import STABLE, target

ON = {"joiner": {"enabled": True}}
ARMS = {"demo": {"model": "demo", "arms": {"stable": "http://prev-demo-predictor.ml",
                                          "canary": {"url": "http://latest-demo-predictor.ml",
                                                     "version": "2"}}}}  # fmt: skip


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def joiner_objects(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["kind"]: d
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "joiner"
    }


def operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "md-modeldeploy"
    )
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env if "value" in e}


def test_on_by_default_and_off_means_nothing_logs(chart: helm.Chart) -> None:
    """On by default: while a canary splits traffic, labels reach the arm that served them
    only through the joiner (the operator warns when it is off: LabelsMayNotArrive)."""
    docs = render(chart, {})
    assert set(joiner_objects(docs)) >= {"Deployment", "Service", "ConfigMap"}
    assert operator_env(docs)["MODELDEPLOY_JOINER_EVENTS_URL"].endswith(":8081")
    off = render(chart, {"joiner": {"enabled": False}})
    assert joiner_objects(off) == {}
    assert "MODELDEPLOY_JOINER_EVENTS_URL" not in operator_env(off)


@pytest.mark.parametrize("values", [ON, {"joiner": {"enabled": True, "arms": ARMS}}])
def test_lint_is_clean_and_every_object_is_valid_kubernetes(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    report = helm.lint(CHART, values, strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    objects = joiner_objects(render(chart, values))
    assert set(objects) == {
        "ConfigMap", "Deployment", "Service", "NetworkPolicy", "Role", "RoleBinding"
    }  # fmt: skip
    for doc in objects.values():
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_the_operator_logs_to_the_joiner_service_and_scrapes_it(chart: helm.Chart) -> None:
    docs = render(chart, ON)
    cfg = KServeSettings.from_env(operator_env(docs))
    service = joiner_objects(docs)["Service"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert cfg.joiner_events_url == f"http://{host}:{ports['events']}"
    assert cfg.joiner_metrics_url == f"http://{host}:{ports['labels']}/metrics"


def test_the_operator_may_patch_the_arms_configmap_and_nothing_else(chart: helm.Chart) -> None:
    docs = render(chart, ON)
    objects = joiner_objects(docs)
    arms = objects["ConfigMap"]["metadata"]
    where = KServeSettings.from_env(operator_env(docs)).joiner_arms_configmap
    assert where == f"{arms['namespace']}/{arms['name']}"
    role, binding = objects["Role"], objects["RoleBinding"]
    assert role["metadata"]["namespace"] == arms["namespace"]
    assert role["rules"] == [
        {"apiGroups": [g], "resources": [r], "resourceNames": [arms["name"]], "verbs": list(v)}
        for g, r, v in rbac.merged(rbac.JOINER_ARMS)
    ]
    assert role["rules"][0]["verbs"] == ["patch"]  # a merge patch of its own key, no read
    operator = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": operator["name"], "namespace": operator["namespace"]}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    # The joiner reads the whole mounted ConfigMap: one file per key.
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    mount = next(v for v in pod["containers"][0]["volumeMounts"] if v["name"] == "arms")
    args = build_parser().parse_args(pod["containers"][0]["args"])
    assert args.arms_file == mount["mountPath"]
    volume = next(v for v in pod["volumes"] if v["name"] == "arms")
    assert volume["configMap"] == {"name": arms["name"]}  # every key, no items list
    no_rbac = joiner_objects(render(chart, {**ON, "rbac": {"create": False}}))
    assert not {"Role", "RoleBinding"} & set(no_rbac)


def test_the_joiner_container_runs_with_the_label_secret_and_its_arms(chart: helm.Chart) -> None:
    objects = joiner_objects(render(chart, {"joiner": {"enabled": True, "arms": ARMS}}))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert objects["Deployment"]["spec"]["replicas"] == 1  # one store
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "modeldeploy.serving.joiner"]
    args = build_parser().parse_args(container["args"])
    assert args.label_token_file.endswith("/label-token") and args.arms_file
    assert (args.pair_share, args.pair_rate) == (0.3, 20.0)  # sampled pairing on, on KServe
    secret = next(v for v in pod["volumes"] if v["name"] == "label-auth")["secret"]
    assert secret["secretName"] == "modeldeploy-label-auth"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    arms = parse_arms(json.loads(objects["ConfigMap"]["data"]["arms.json"]))
    assert arms["demo"].versions["canary"] == "2"
    with pytest.raises(ValueError, match="both"):  # token files are required together
        config_from(build_parser().parse_args(["--label-token-file", "x"]))


def test_only_predictor_pods_reach_the_events_port(chart: helm.Chart) -> None:
    policy = joiner_objects(render(chart, ON))["NetworkPolicy"]["spec"]
    events, labels = policy["ingress"]
    assert events["ports"] == [{"port": 8081, "protocol": "TCP"}]
    selector = events["from"][0]["podSelector"]["matchExpressions"][0]
    pod_labels = m.inference_service(target(), STABLE)["spec"]["predictor"]["labels"]
    assert selector["key"] in pod_labels and pod_labels[selector["key"]] in selector["values"]
    assert labels["ports"] == [{"port": 8080, "protocol": "TCP"}] and "from" not in labels
    narrowed = joiner_objects(render(chart, {"joiner": {"enabled": True, "networkPolicy": {
        "enabled": True, "predictorNamespaceSelector": {"matchLabels": {"team": "ml"}},
        "labelClients": [{"podSelector": {"matchLabels": {"app": "labeller"}}}]}}}))  # fmt: skip
    events, labels = narrowed["NetworkPolicy"]["spec"]["ingress"]
    assert events["from"][0]["namespaceSelector"] == {"matchLabels": {"team": "ml"}}
    labeller = {"podSelector": {"matchLabels": {"app": "labeller"}}}
    # Narrowed to the labeller, the port still lets the operator read /metrics (the
    # analysis's label counters): its own pods, by the Deployment's selector.
    operator = next(d for d in render(chart, ON) if d["kind"] == "Deployment"
                    and d["metadata"]["name"] == "md-modeldeploy")  # fmt: skip
    operator_pods = {"podSelector": {"matchLabels": operator["spec"]["selector"]["matchLabels"]}}
    assert labels["from"] == [labeller, operator_pods]
    prometheus = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    with_metrics = joiner_objects(render(chart, {"joiner": {"enabled": True, "networkPolicy": {
        "enabled": True, "predictorNamespaceSelector": {}, "labelClients": [labeller],
        "metricsClients": [prometheus]}}}))  # fmt: skip
    _, labels = with_metrics["NetworkPolicy"]["spec"]["ingress"]
    assert labels["from"] == [labeller, operator_pods, prometheus]
    kubernetes_validate.validate(with_metrics["NetworkPolicy"], KUBE_VERSION, strict=True)


def test_prometheus_scrapes_the_joiner_where_it_scrapes_the_operator(chart: helm.Chart) -> None:
    values = {**ON, "monitoring": {"serviceMonitor": {"enabled": True}}}
    monitors = [d for d in render(chart, values) if d["kind"] == "ServiceMonitor"]
    joiner = next(m for m in monitors if m["metadata"]["name"].endswith("-joiner"))
    service = joiner_objects(render(chart, values))["Service"]
    # A ServiceMonitor selects Services by their labels, and the joiner's Service only.
    wanted = joiner["spec"]["selector"]["matchLabels"].items()
    assert wanted <= service["metadata"]["labels"].items()
    operator_service = next(d for d in render(chart, values) if d["kind"] == "Service"
                            and d["metadata"]["name"] == "md-modeldeploy")  # fmt: skip
    assert not wanted <= operator_service["metadata"]["labels"].items()
    assert joiner["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    (endpoint,) = joiner["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "labels"
    assert len(monitors) == 2  # and the operator's own
    values = {"monitoring": {"serviceMonitor": {"enabled": True}}, "joiner": {"enabled": False}}
    without = [d for d in render(chart, values) if d["kind"] == "ServiceMonitor"]
    assert len(without) == 1  # no joiner, no monitor for it


def test_the_schema_refuses_a_bad_arm_url(chart: helm.Chart) -> None:
    bad = {"joiner": {"enabled": True, "arms": {"demo": {"arms": {"stable": "file:///x"}}}}}
    with pytest.raises(helm.HelmValuesError):
        render(chart, bad)


def _state(objects: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The joiner's ``--state-file`` and the volume that holds it."""
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = build_parser().parse_args(container["args"])
    mount = next(v for v in container["volumeMounts"] if v["name"] == "state")
    assert args.state_file.startswith(mount["mountPath"] + "/")  # writable under a read-only root
    assert not mount.get("readOnly")
    return args.state_file, next(v for v in pod["volumes"] if v["name"] == "state")


def test_the_book_survives_a_container_restart_by_default(chart: helm.Chart) -> None:
    objects = joiner_objects(render(chart, ON))
    _, volume = _state(objects)
    assert volume["emptyDir"] == {"sizeLimit": "512Mi"}
    assert "PersistentVolumeClaim" not in objects


def test_with_persistence_the_book_is_on_a_claim_that_outlives_the_pod(chart: helm.Chart) -> None:
    values = {"joiner": {"enabled": True, "persistence": {
        "enabled": True, "storageClass": "fast", "size": "2Gi"}}}  # fmt: skip
    report = helm.lint(CHART, values, strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    objects = joiner_objects(render(chart, values))
    claim = objects["PersistentVolumeClaim"]
    kubernetes_validate.validate(claim, KUBE_VERSION, strict=True)
    kubernetes_validate.validate(objects["Deployment"], KUBE_VERSION, strict=True)
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                             "resources": {"requests": {"storage": "2Gi"}}}  # fmt: skip
    _, volume = _state(objects)
    assert volume["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    # One pod at a time may mount a ReadWriteOnce claim: the old one goes first.
    assert objects["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}

    existing = {"joiner": {"enabled": True, "persistence": {
        "enabled": True, "existingClaim": "my-claim"}}}  # fmt: skip
    objects = joiner_objects(render(chart, existing))
    assert "PersistentVolumeClaim" not in objects
    assert _state(objects)[1]["persistentVolumeClaim"] == {"claimName": "my-claim"}


def test_the_schema_refuses_a_size_that_is_not_a_quantity(chart: helm.Chart) -> None:
    bad = {"joiner": {"enabled": True, "persistence": {"enabled": True, "size": "lots"}}}
    with pytest.raises(helm.HelmValuesError):
        render(chart, bad)


def test_notes_name_the_joiners_labels_url_and_say_when_it_is_off(chart: helm.Chart) -> None:
    notes = chart.render({}, name="md", namespace="ops")["modeldeploy/templates/NOTES.txt"]
    service = joiner_objects(render(chart, {}))["Service"]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "labels")
    assert port == build_parser().get_default("port")  # the joiner's own labels port
    assert f"POST http://md-modeldeploy-joiner.ops.svc:{port}/v1/feedback" in notes
    off = chart.render({"joiner": {"enabled": False}}, name="md", namespace="ops")
    assert "LabelsMayNotArrive" in off["modeldeploy/templates/NOTES.txt"]
