"""The Helm chart, offline: lint, render over value sets, schema, and agreement with the code.

Rendering goes through helm-python-sdk (Helm's own Go SDK, no binary, no cluster), so
values.schema.json is enforced exactly as `helm install` enforces it. Core kinds are
validated with kubernetes-validate in strict mode (unknown fields are errors).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from tests.unit.chart.chart_files import (
    CHART,
    ROOT,
    normalise,
    render_rbac_file,
    rules_from_code,
    rules_in_chart,
)

KUBE_VERSION = "1.30.0"
CORE_KINDS = {
    "Deployment",
    "ServiceAccount",
    "Service",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
}
MONITORING_ON = {
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}
GPU_NODE = {
    "resources": {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    },
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": "system-cluster-critical",
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watch": {"namespaces": ["team-a", "team-b"]}},
    "monitoring": MONITORING_ON,
    "gpu-node-resources": GPU_NODE,
    "ha-peering": {"replicaCount": 2, "leaderElection": {"enabled": True}},
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart renders with ``values`` (templates only; CRDs are separate)."""
    out = chart.render(values, name="md", namespace="modeldeploy-system", is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one operator-side object of ``kind`` (the joiner's own, on by default, are
    tests/unit/chart/test_chart_joiner.py's)."""
    found = [d for d in docs if d["kind"] == kind and not is_joiners(d)]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def is_joiners(doc: dict[str, Any]) -> bool:
    labels = (doc.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/component") == "joiner"


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


# -- lint and schema --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_is_clean_in_strict_mode(name: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[name], strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize(
    ("values", "where", "why"),
    [
        ({"replicaCount": "two"}, "/replicaCount", "want integer"),
        ({"bogus": True}, "''", "'bogus' not allowed"),
        ({"image": {"registry": "x"}}, "/image", "'registry' not allowed"),
        ({"operator": {"platform": "seldon"}}, "/operator/platform", "kserve"),
        ({"webhook": {"port": 70000}}, "/webhook/port", "maximum"),
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "/securityContext", "true"),
        ({"replicaCount": 2}, "/replicaCount", "maximum"),
        (
            {"monitoring": {"prometheusRule": {"inconclusiveFor": "soon"}}},
            "/inconclusiveFor",
            "pattern",
        ),
    ],
    ids=[
        "wrong-type",
        "unknown-key",
        "unknown-nested-key",
        "bad-enum",
        "port-range",
        "weaker-security",
        "replicas-without-peering",
        "bad-duration",
    ],
)
def test_schema_refuses_bad_values_with_a_clear_error(
    chart: helm.Chart, values: dict[str, Any], where: str, why: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as err:
        chart.render(values, name="md", namespace="modeldeploy-system")
    message = str(err.value)
    assert "schema" in message
    assert where in message
    assert why in message


def test_default_values_are_documented_in_values_yaml(chart: helm.Chart) -> None:
    text = (CHART / "values.yaml").read_text()
    for key in chart.values:
        assert re.search(rf"^{key}:", text, re.M), key
    assert text.count("# --") >= 20


# -- render and validate ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_core_kinds_are_valid_kubernetes(chart: helm.Chart, name: str) -> None:
    docs = render(chart, VALUE_SETS[name])
    core = [d for d in docs if d["kind"] in CORE_KINDS]
    assert {"Deployment", "ServiceAccount", "Service"} <= {d["kind"] for d in core}
    for doc in core:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_strict_validation_catches_a_misspelt_field(chart: helm.Chart) -> None:
    deployment = only(render(chart, {}), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def test_defaults_render_a_cluster_wide_standalone_operator(chart: helm.Chart) -> None:
    docs = render(chart, {})
    kinds = sorted(d["kind"] for d in docs if not is_joiners(d))
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Secret",  # the label and control tokens (predictor.labelAuth)
        "Service",
        "ServiceAccount",
    ]
    # and the joiner, on by default (test_chart_joiner.py), its book on an emptyDir
    assert sorted(d["kind"] for d in docs if is_joiners(d)) == [
        "ConfigMap", "Deployment", "NetworkPolicy", "Role", "RoleBinding", "Service",
    ]  # fmt: skip
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    binding = only(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": only(docs, "ServiceAccount")["metadata"]["name"],
            "namespace": "modeldeploy-system",
        }
    ]
    assert binding["roleRef"]["name"] == only(docs, "ClusterRole")["metadata"]["name"]


def _operator_args(docs: list[dict[str, Any]]) -> argparse.Namespace:
    """Parse the container's command line with the operator's real CLI parser."""
    from modeldeploy.operator import cli

    parser = argparse.ArgumentParser(prog="modeldeploy")
    cli.register(parser.add_subparsers(dest="command"))
    c = container(docs)
    assert c["command"] == ["modeldeploy"]
    return parser.parse_args(c["args"])


def test_container_command_is_accepted_by_the_operator_cli(chart: helm.Chart) -> None:
    args = _operator_args(render(chart, {}))
    assert (args.command, args.operator_command) == ("operator", "run")
    assert args.all_namespaces and args.standalone
    assert args.liveness == "http://0.0.0.0:8080/healthz"


def test_probes_hit_the_kopf_liveness_endpoint(chart: helm.Chart) -> None:
    docs = render(chart, {"health": {"port": 8181, "path": "/livez"}})
    c = container(docs)
    args = _operator_args(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert args.liveness == "http://0.0.0.0:8181/livez"
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert (ports[get["port"]], get["path"]) == (8181, "/livez")


def test_environment_is_what_the_operator_settings_read(chart: helm.Chart) -> None:
    from modeldeploy.operator.settings import OperatorSettings

    values = {
        "registry": {"uri": "http://mlflow.ml:5000", "watchSeconds": 30},
        "operator": {"platform": "nop", "tickSeconds": 5},
        "metrics": {"port": 9200},
        "webhook": {"port": 8444},
    }
    env = env_of(render(chart, values))
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    settings = OperatorSettings.from_env(plain)
    assert settings.registry.default_uri == "http://mlflow.ml:5000"
    assert settings.registry.watch_seconds == 30.0
    assert settings.registry.webhook_port == 8444
    assert settings.rollout.platform == "nop"
    assert settings.rollout.tick_seconds == 5.0
    assert settings.metrics_port == 9200


def test_webhook_off_means_no_receiver_and_no_secret(chart: helm.Chart) -> None:
    from modeldeploy.operator.settings import OperatorSettings

    docs = render(chart, {"webhook": {"enabled": False}})
    env = env_of(docs)
    assert "MODELDEPLOY_WEBHOOK_SECRET" not in env
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    assert OperatorSettings.from_env(plain).registry.webhook_port == 0
    assert [p["name"] for p in only(docs, "Service")["spec"]["ports"]] == ["metrics"]


def test_notes_name_the_receivers_real_path(chart: helm.Chart) -> None:
    from modeldeploy.registry.webhooks import DEFAULT_PATH

    notes = chart.render({}, name="md", namespace="ops")["modeldeploy/templates/NOTES.txt"]
    assert f"http://md-modeldeploy.ops.svc:8081{DEFAULT_PATH}" in notes


def test_webhook_secret_comes_from_a_secret_reference(chart: helm.Chart) -> None:
    from modeldeploy.registry.cli import SECRET_ENV

    values = {"webhook": {"secret": {"name": "mlflow-hook", "key": "hmac"}}}
    env = env_of(render(chart, values))
    assert env[SECRET_ENV] == {
        "secretKeyRef": {"name": "mlflow-hook", "key": "hmac", "optional": False}
    }


def test_service_exposes_the_webhook_and_metrics_ports(chart: helm.Chart) -> None:
    docs = render(chart, {})
    service = only(docs, "Service")
    named = {p["name"]: p["containerPort"] for p in container(docs)["ports"]}
    ports = {p["name"]: (p["port"], named[p["targetPort"]]) for p in service["spec"]["ports"]}
    assert ports == {"webhook": (8081, 8081), "metrics": (9100, 9100)}
    pod_labels = only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_metrics_off_means_no_metrics_port(chart: helm.Chart) -> None:
    docs = render(chart, {"metrics": {"enabled": False}, **MONITORING_ON})
    assert env_of(docs)["MODELDEPLOY_OPERATOR_METRICS_PORT"] == "0"
    assert [p["name"] for p in only(docs, "Service")["spec"]["ports"]] == ["webhook"]
    assert not [d for d in docs if d["kind"] == "ServiceMonitor" and not is_joiners(d)]


def test_security_context_is_restrictive(chart: helm.Chart) -> None:
    docs = render(chart, {})
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    sc = container(docs)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # A read-only root needs a writable /tmp (HOME points there).
    mounts = {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}
    assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[mounts["/tmp"]]
    assert env_of(docs)["HOME"] == "/tmp"


def test_gpu_node_and_resource_overrides_reach_the_pod(chart: helm.Chart) -> None:
    docs = render(chart, GPU_NODE)
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert container(docs)["resources"] == GPU_NODE["resources"]
    assert pod["nodeSelector"] == GPU_NODE["nodeSelector"]
    assert pod["tolerations"] == GPU_NODE["tolerations"]
    assert pod["priorityClassName"] == "system-cluster-critical"


def test_leader_election_uses_kopf_peering(chart: helm.Chart) -> None:
    docs = render(chart, VALUE_SETS["ha-peering"])
    args = _operator_args(docs)
    assert not args.standalone
    assert args.peering == "modeldeploy"
    assert "strategy" not in only(docs, "Deployment")["spec"]


# -- RBAC ---------------------------------------------------------------------------------


def _triples(rules: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...]]]:
    return normalise(
        (r["apiGroups"], r["resources"], r["verbs"]) for r in rules if "resourceNames" not in r
    )


def test_cluster_role_carries_every_generated_rule(chart: helm.Chart) -> None:
    generated = rules_in_chart()
    role = only(render(chart, {}), "ClusterRole")
    assert _triples(role["rules"]) == _triples(generated["cluster"] + generated["namespaced"])
    assert _triples(role["rules"])  # not empty


def test_namespaced_install_grants_roles_only_in_watched_namespaces(chart: helm.Chart) -> None:
    docs = render(chart, VALUE_SETS["namespaced"])
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    roles = [d for d in docs if d["kind"] == "Role" and not is_joiners(d)]
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and not is_joiners(d)]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for role in roles:
        assert _triples(role["rules"]) == _triples(rules_in_chart()["namespaced"])
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == "modeldeploy-system"
    args = _operator_args(docs)
    assert args.namespace == ["team-a", "team-b"] and not args.all_namespaces


def test_rbac_rules_equal_the_operators_own_list(chart: helm.Chart) -> None:
    code = rules_from_code()
    assert (CHART / "files" / "rbac-rules.yaml").read_text() == render_rbac_file(code), (
        "regenerate: .venv/bin/python -m tests.unit.chart.chart_files"
    )
    # A cluster-wide install peers through a ClusterKopfPeering, never a KopfPeering.
    role = only(render(chart, VALUE_SETS["ha-peering"]), "ClusterRole")
    assert _triples(role["rules"]) == [t for t in code if t[1] != "kopfpeerings"]


@pytest.mark.parametrize(
    ("values", "kind", "peerings"),
    [
        ({}, "ClusterRole", set()),
        (VALUE_SETS["ha-peering"], "ClusterRole", {"clusterkopfpeerings"}),
        (VALUE_SETS["namespaced"], "Role", set()),
        (
            {**VALUE_SETS["namespaced"], "leaderElection": {"enabled": True}},
            "Role",
            {"kopfpeerings"},
        ),
    ],
)
def test_peering_rules_only_with_leader_election(
    chart: helm.Chart, values: dict[str, Any], kind: str, peerings: set[str]
) -> None:
    for role in (d for d in render(chart, values) if d["kind"] == kind and not is_joiners(d)):
        granted = {r for g, r, _ in _triples(role["rules"]) if g == "kopf.dev"}
        assert granted == peerings


def test_least_privilege_on_models_and_inference_services(chart: helm.Chart) -> None:
    granted = {
        (r, v)
        for _, r, verbs in _triples(only(render(chart, {}), "ClusterRole")["rules"])
        for v in verbs
    }
    # blockOwnerDeletion on the InferenceServices' owner reference needs this where the
    # OwnerReferencesPermissionEnforcement admission plugin is on.
    assert ("modeldeployments/finalizers", "update") in granted
    # The garbage collector deletes an InferenceService with its ModelDeployment.
    assert ("inferenceservices", "delete") not in granted


def test_mlflow_client_retries_are_bounded_and_overridable(chart: helm.Chart) -> None:
    env = env_of(render(chart, {}))
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"
    extra = [{"name": "MLFLOW_HTTP_REQUEST_TIMEOUT", "value": "30"}]
    names = [e["name"] for e in container(render(chart, {"operator": {"extraEnv": extra}}))["env"]]
    assert names.count("MLFLOW_HTTP_REQUEST_TIMEOUT") == 1
    assert (
        env_of(render(chart, {"operator": {"extraEnv": extra}}))["MLFLOW_HTTP_REQUEST_TIMEOUT"]
        == "30"
    )


# -- CRD ----------------------------------------------------------------------------------


def test_crd_shipped_by_the_chart_equals_the_one_built_from_code(chart: helm.Chart) -> None:
    from modeldeploy.operator.api.crd import build_crd

    shipped = chart.crds
    assert [c["filename"] for c in shipped] == [
        "modeldeploy/crds/kopf-peerings.yaml",
        "modeldeploy/crds/modeldeployments.yaml",
    ]
    assert yaml.safe_load(shipped[1]["data"]) == build_crd()
    peering = list(yaml.safe_load_all(shipped[0]["data"]))
    assert {(c["spec"]["names"]["kind"], c["spec"]["scope"]) for c in peering} == {
        ("ClusterKopfPeering", "Cluster"),
        ("KopfPeering", "Namespaced"),
    }


# -- monitoring ---------------------------------------------------------------------------


def test_monitoring_objects_only_when_enabled(chart: helm.Chart) -> None:
    off = {d["kind"] for d in render(chart, {}) if not is_joiners(d)}
    assert not off & {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    docs = render(chart, MONITORING_ON)
    monitor = only(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        only(docs, "Service")["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    rule = only(docs, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == {
        "ModelDeployRolledBack",
        "ModelDeployAnalysisInconclusive",
        "ModelDeployCanaryUnderpowered",
        "ModelDeployAvailabilityBudgetBurn",
        "ModelDeployLatencyBudgetBurn",
        "ModelDeployRegistryUnavailable",
        "ModelDeployDriftFromReference",
        "ModelDeployGpuIdle",
        "ModelDeployJoinerStateFileFailing",
    }
    dashboard = only(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def _dashboard(docs: list[dict[str, Any]]) -> dict[str, Any]:
    data = only(docs, "ConfigMap")["data"]
    (text,) = data.values()
    return json.loads(text)


def test_dashboard_has_the_rollout_panels(chart: helm.Chart) -> None:
    board = _dashboard(render(chart, MONITORING_ON))
    by_title = {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in board["panels"]}
    (p99,) = by_title["P99 latency per version"]
    assert re.fullmatch(
        r"histogram_quantile\(0\.99, sum by \(le, model_version, role\) "
        r"\(rate\(modeldeploy_request_duration_seconds_bucket\{.*\}\[\$__rate_interval\]\)\)\)",
        p99,
    )
    assert 'correct="true"' in by_title["Live accuracy per arm"][0]
    bound = " ".join(by_title["Accuracy difference (canary - stable) with its confidence bound"])
    assert "accuracy.difference_lower" in bound and "accuracy.margin" in bound
    assert "modeldeploy_operator_canary_weight_percent" in by_title["Canary traffic weight"][0]
    assert "outcome" in by_title["Rollout decisions"][0]


METRIC = re.compile(r"\bmodeldeploy_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def known_metric_names() -> set[str]:
    """Every series name the operator, the registry watcher and the servers export."""
    from modeldeploy.operator import telemetry
    from modeldeploy.registry import metrics as registry_metrics

    names: set[str] = set()
    for module in (telemetry, registry_metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    names |= {family.name + s for s in SUFFIXES[family.type]}
    row = re.compile(
        r"^\| `(modeldeploy_[a-z0-9_]+)` \| (counter|gauge|histogram|summary) \|", re.M
    )
    for name, kind in row.findall((ROOT / "docs" / "metrics.md").read_text()):
        base = name.removesuffix("_total") if kind == "counter" else name
        names |= {base + s for s in SUFFIXES[kind]}
    return names


def test_known_metric_names_cover_operator_and_serving() -> None:
    names = known_metric_names()
    assert "modeldeploy_operator_rollouts_total" in names
    assert "modeldeploy_request_duration_seconds_bucket" in names
    assert "modeldeploy_labelled_predictions_total" in names
    assert "modeldeploy_request_duration_seconds" not in names  # histograms: buckets only
    assert "modeldeploy_operator_rollouts" not in names  # counters: _total only


def test_promql_uses_only_metric_names_that_exist(chart: helm.Chart) -> None:
    docs = render(chart, MONITORING_ON)
    rule = only(docs, "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    board = _dashboard(docs)
    exprs += [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert len(used) >= 8
    assert used - known_metric_names() == set()


def test_analysis_numbers_on_the_dashboard_are_ones_the_analysis_writes(
    chart: helm.Chart,
) -> None:
    board = _dashboard(render(chart, MONITORING_ON))
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
    keys = set(re.findall(r'metric="([a-z_]+)\.([a-z_]+)"', exprs))
    assert keys
    for check, key in keys:
        source = (ROOT / "operator/modeldeploy/operator/analysis" / f"{check}.py").read_text()
        assert re.search(rf"\b{key}\b\s*=|\"{key}\"", source), f"{check}.{key}"


@pytest.mark.parametrize("doc", ["deploy-kubernetes.md", "runbook.md"])
def test_docs_name_only_metrics_and_alerts_that_exist(chart: helm.Chart, doc: str) -> None:
    text = (ROOT / "docs" / doc).read_text()
    known = known_metric_names()
    for name in set(METRIC.findall(text)):
        assert name in known or f"{name}_bucket" in known, f"{doc}: unknown metric {name}"
    rule = only(render(chart, MONITORING_ON), "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    named = set(re.findall(r"\bModelDeploy[A-Z][A-Za-z]+\b", text))
    assert named and named <= alerts, named - alerts


def test_checked_in_rbac_file_is_in_the_generators_format() -> None:
    generated = rules_in_chart()
    peering = generated.get("peering") or {"cluster": [], "namespaced": []}
    parts = generated["cluster"] + generated["namespaced"]
    triples = _triples(parts + peering["cluster"] + peering["namespaced"])
    assert render_rbac_file(triples) == (CHART / "files" / "rbac-rules.yaml").read_text()


def test_rbac_generator_accepts_tuples_dicts_and_objects() -> None:
    from types import SimpleNamespace

    rules = [
        ("serving.kserve.io", "inferenceservices", ("get", "create")),
        {"apiGroup": "", "resource": "events", "verbs": ["create"]},
        SimpleNamespace(api_group="kopf.dev", resource="clusterkopfpeerings", verbs=["list"]),
        ("serving.kserve.io", "inferenceservices", ["delete"]),
    ]
    triples = normalise(rules)
    assert triples == [
        ("", "events", ("create",)),
        ("kopf.dev", "clusterkopfpeerings", ("list",)),
        ("serving.kserve.io", "inferenceservices", ("create", "delete", "get")),
    ]
    split = yaml.safe_load(render_rbac_file(triples))
    assert split["cluster"] == []
    assert [r["resources"] for r in split["peering"]["cluster"]] == [["clusterkopfpeerings"]]
    assert [r["resources"] for r in split["namespaced"]] == [["events"], ["inferenceservices"]]


# -- PromQL, checked by Prometheus itself ---------------------------------------------------

PROMTOOL = shutil.which("promtool")


def needs_promtool(test):  # type: ignore[no-untyped-def]
    """promtool comes with `make system-deps`; its absence fails the test, never skips it."""

    @functools.wraps(test)
    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert PROMTOOL is not None, "promtool not found: run `make system-deps`"
        return test(*args, **kwargs)

    return run


GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__range": "1h",
    "$window": "30m",
    "$deployment": ".*",
    "$name": ".*",
}


def _rule_groups(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The PrometheusRule's groups without annotations (the tests check expressions)."""
    groups = only(docs, "PrometheusRule")["spec"]["groups"]
    return [
        {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
        for g in groups
    ]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


@needs_promtool
def test_alert_and_dashboard_promql_parses(chart: helm.Chart, tmp_path: Path) -> None:
    docs = render(chart, MONITORING_ON)
    groups = _rule_groups(docs)
    board = _dashboard(docs)
    records = []
    for i, expr in enumerate(t["expr"] for p in board["panels"] for t in p.get("targets", [])):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        records.append({"record": f"dashboard:panel_{i}", "expr": expr})
    groups.append({"name": "dashboard", "rules": records})
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    result = _promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alerts_fire_on_the_situations_they_name(chart: helm.Chart, tmp_path: Path) -> None:
    """promtool evaluates the rendered alerts over synthetic operator series."""
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"groups": _rule_groups(render(chart, MONITORING_ON))})
    )
    md = 'namespace="ml",name="sentiment"'
    rollouts = "modeldeploy_operator_rollouts_total"
    registry_up = 'modeldeploy_registry_up{namespace="modeldeploy-system",pod="op"}'
    expected_md = [{"exp_labels": {"severity": "warning", "namespace": "ml", "name": "sentiment"}}]
    down = {"severity": "warning", "namespace": "modeldeploy-system", "pod": "op"}
    state_errors = "modeldeploy_joiner_state_file_errors_total"
    joiner = 'namespace="modeldeploy-system",pod="joiner-0"'
    failing = [{"exp_labels": {"severity": "warning", "namespace": "modeldeploy-system",
                               "pod": "joiner-0"}}]  # fmt: skip
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # first rollback at 10m (the series appears at 1), a second at 50m
                    {
                        "series": f'{rollouts}{{{md},outcome="RolledBack"}}',
                        "values": "_x9 1x39 2x20",
                    },
                    # a promotion never alerts
                    {
                        "series": f'{rollouts}{{{md},outcome="Promoted"}}',
                        "values": "1x70",
                    },
                    {
                        "series": registry_up,
                        "values": "1x4 0x10 1x10",
                    },
                    # the joiner's state file fails twice around 30m, then never again
                    {
                        "series": f'{state_errors}{{{joiner},operation="write"}}',
                        "values": "0x29 2 2x40",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "ModelDeployRolledBack", "exp_alerts": []},
                    {
                        "eval_time": "12m",
                        "alertname": "ModelDeployRolledBack",
                        "exp_alerts": expected_md,
                    },
                    {"eval_time": "45m", "alertname": "ModelDeployRolledBack", "exp_alerts": []},
                    {
                        "eval_time": "52m",
                        "alertname": "ModelDeployRolledBack",
                        "exp_alerts": expected_md,
                    },
                    {
                        "eval_time": "7m",
                        "alertname": "ModelDeployRegistryUnavailable",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "12m",
                        "alertname": "ModelDeployRegistryUnavailable",
                        "exp_alerts": [{"exp_labels": down}],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "ModelDeployRegistryUnavailable",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "25m",
                        "alertname": "ModelDeployJoinerStateFileFailing",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "32m",
                        "alertname": "ModelDeployJoinerStateFileFailing",
                        "exp_alerts": failing,
                    },
                    {
                        "eval_time": "45m",
                        "alertname": "ModelDeployJoinerStateFileFailing",
                        "exp_alerts": [],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = _promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "kind", "namespaces"),
    [
        ({"leaderElection": {"enabled": True}}, "ClusterKopfPeering", [None]),
        (
            {"leaderElection": {"enabled": True}, "watch": {"namespaces": ["a", "b"]}},
            "KopfPeering",
            ["a", "b"],
        ),
    ],
)
def test_leader_election_ships_the_peering_object_kopf_expects(
    chart: helm.Chart, values: dict[str, Any], kind: str, namespaces: list[str | None]
) -> None:
    docs = render(chart, values)
    peerings = [d for d in docs if d["kind"] == kind]
    assert [p["metadata"].get("namespace") for p in peerings] == namespaces
    name = peerings[0]["metadata"]["name"]
    assert f"--peering={name}" in container(docs)["args"]


def test_no_peering_object_without_leader_election(chart: helm.Chart) -> None:
    kinds = {d["kind"] for d in render(chart, {})}
    assert not kinds & {"KopfPeering", "ClusterKopfPeering"}
