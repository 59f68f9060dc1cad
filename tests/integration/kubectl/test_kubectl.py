"""kubectl 1.35 against the emulated API server: what an operator's user types, as on a cluster.

Expected messages are built from the CRD the project generates (enums, bounds, printer
columns, descriptions), so the tests follow the schema as it changes.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from kopf.testing import KopfRunner

from modeldeploy.operator.api.crd import build_crd

EXAMPLE = Path(__file__).parents[3] / "examples" / "sentiment-local.yaml"
OPERATOR = str(Path(__file__).with_name("finalizing_operator.py"))
MD_PATH = "/apis/modeldeploy.io/v1alpha1/namespaces/ml/modeldeployments"


def served() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]


def spec_schema() -> dict[str, Any]:
    return served()["schema"]["openAPIV3Schema"]["properties"]["spec"]


def example(name: str) -> dict[str, Any]:
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"]["name"] = name
    return manifest


def apply(kubectl, tmp_path: Path, manifest: dict[str, Any]):
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return kubectl("apply", "-f", str(path)), path


def test_apply_validates_on_the_server_and_get_prints_the_crds_columns(kubectl, tmp_path):
    done = kubectl("apply", "-f", str(EXAMPLE))  # no --validate=false
    assert done.returncode == 0, done.stderr
    name = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]
    assert done.stdout.strip() == f"modeldeployment.modeldeploy.io/{name} created"
    posts = [r for r in kubectl.emulator._requests if r.method == "POST"]
    assert posts and posts[-1].params.get("fieldValidation") == "Strict"
    again = kubectl("apply", "-f", str(EXAMPLE))
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stderr

    status = {"status": {"phase": "Progressing", "canary": {"version": "7", "weight": 20}}}
    patched = kubectl(
        "patch", "md", name, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    assert patched.returncode == 0, patched.stderr
    shown = kubectl("get", "md")
    assert shown.returncode == 0 and not shown.stderr, shown.stderr
    header, row = shown.stdout.splitlines()
    columns = ["NAME"] + [c["name"].upper() for c in served()["additionalPrinterColumns"]]
    assert header.split() == columns
    cells = dict(zip(columns, row.split(), strict=False))
    model = yaml.safe_load(EXAMPLE.read_text())["spec"]["model"]["name"]
    assert cells["NAME"] == name and cells["MODEL"] == model
    assert "Progressing" in row.split() and "20" in row.split() and "7" in row.split()
    assert row.split()[-1].endswith("s")  # the age, e.g. "1s"


def test_explain_prints_the_field_descriptions(kubectl):
    shown = kubectl("explain", "modeldeployment.spec.rollout")
    assert shown.returncode == 0, shown.stderr
    rollout = spec_schema()["properties"]["rollout"]
    assert "FIELD: rollout <Object>" in shown.stdout
    assert rollout["description"] in " ".join(shown.stdout.split())
    text = " ".join(shown.stdout.split())
    for field, schema in rollout["properties"].items():
        assert field in shown.stdout
        assert " ".join(schema["description"].split()) in text


def _invalid_cases() -> list[tuple[str, Any, str]]:
    """(name, how to break the example, what kubectl prints after `is invalid: `)."""
    spec = spec_schema()["properties"]
    runtime_values = ", ".join(f'"{v}"' for v in spec["runtime"]["enum"])
    step = spec["rollout"]["properties"]["steps"]["items"]
    low, top = step["minimum"], step["maximum"]

    def rollout(**fields):
        return lambda m: m["spec"]["rollout"].update(fields)

    return [
        (
            "bad-enum",
            lambda m: m["spec"].update(runtime="pytorch"),
            f'spec.runtime: Unsupported value: "pytorch": supported values: {runtime_values}',
        ),
        (
            "negative-step",
            rollout(steps=[-10, 100]),
            f"spec.rollout.steps[0]: Invalid value: -10: spec.rollout.steps[0] in body should be"
            f" greater than or equal to {low}",
        ),
        (
            "huge-step",
            rollout(steps=[50, top + 50]),
            f"spec.rollout.steps[1]: Invalid value: {top + 50}: spec.rollout.steps[1] in body"
            f" should be less than or equal to {top}",
        ),
        (
            "no-model-name",
            lambda m: m["spec"]["model"].pop("name"),
            "spec.model.name: Required value",
        ),
        (
            "wrong-type",
            rollout(intervalSeconds="10s"),
            'spec.rollout.intervalSeconds: Invalid value: "string": spec.rollout.intervalSeconds'
            ' in body must be of type integer: "string"',
        ),
        ("no-spec", lambda m: m.pop("spec"), "spec: Required value"),
    ]


@pytest.mark.parametrize(("name", "breaks", "printed"), _invalid_cases(), ids=lambda v: str(v)[:20])
def test_invalid_model_deployments_are_refused_with_the_api_servers_message(
    kubectl, tmp_path, name, breaks, printed
):
    manifest = example(name)
    breaks(manifest)
    done, _ = apply(kubectl, tmp_path, manifest)
    assert done.returncode == 1
    assert done.stderr.strip() == f'The ModelDeployment "{name}" is invalid: {printed}'
    assert kubectl.emulator.objects_of("modeldeploy.io", "modeldeployments") == []


def test_an_unknown_field_is_refused_by_strict_field_validation(kubectl, tmp_path):
    manifest = example("unknown-field")
    manifest["spec"]["rollout"]["stepz"] = [10, 100]
    done, path = apply(kubectl, tmp_path, manifest)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{path}": ModelDeployment in'
        ' version "v1alpha1" cannot be handled as a ModelDeployment: strict decoding error:'
        ' unknown field "spec.rollout.stepz"'
    )
    relaxed = kubectl("apply", "--validate=warn", "-f", str(path))
    assert relaxed.returncode == 0, relaxed.stderr
    assert 'Warning: unknown field "spec.rollout.stepz"' in relaxed.stderr
    stored = kubectl.emulator.objects_of("modeldeploy.io", "modeldeployments")
    assert [o["metadata"]["name"] for o in stored] == ["unknown-field"]
    assert "stepz" not in stored[0]["spec"]["rollout"]  # pruned, as the API server does


def test_a_bad_name_is_refused(kubectl, tmp_path):
    done, _ = apply(kubectl, tmp_path, example("Bad_Name"))
    assert done.returncode == 1
    assert done.stderr.startswith(
        'The ModelDeployment "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name":'
        " a lowercase RFC 1123 subdomain"
    )


def test_delete_completes_when_kopf_removes_its_finalizer_by_json_patch(kubectl, tmp_path):
    manifest = example("finalized")
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    args = ["run", "--standalone", "-n", "ml", OPERATOR]
    runner = KopfRunner(args, registry=kopf.OperatorRegistry(), settings=settings, timeout=60)
    with runner:
        done, _ = apply(kubectl, tmp_path, copy.deepcopy(manifest))
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = kubectl.emulator.objects_of("modeldeploy.io", "modeldeployments", "ml")
            if found and found[0]["metadata"].get("finalizers"):
                break
            time.sleep(0.2)
        else:
            pytest.fail("kopf never added its finalizer")
        started = time.monotonic()
        deleted = kubectl("delete", "md", "finalized", "--timeout=30s")
        took = time.monotonic() - started
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.startswith('modeldeployment.modeldeploy.io "finalized" deleted')
    assert took < 20 and kubectl.emulator.objects_of("modeldeploy.io", "modeldeployments") == []
    removals = [
        r.data
        for r in kubectl.emulator._requests
        if r.method == "PATCH" and r.headers.get("Content-Type") == "application/json-patch+json"
    ]
    assert any(
        op.get("op") == "remove" and op["path"].startswith("/metadata/finalizers")
        for ops in removals
        for op in ops
    ), removals
    patches_after_delete = [r for r in kubectl.emulator._requests if r.method == "PATCH"]
    assert len(patches_after_delete) < 20  # no re-patching loop on a deleted object
    assert runner.exception is None, runner.exception
