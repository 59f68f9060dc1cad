"""The CRD: generated from the schema, committed in the chart, and the examples pass it."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from modeldeploy.operator.api.crd import build_crd, render_crd
from modeldeploy.operator.api.openapi import to_jsonschema
from modeldeploy.operator.api.types import parse_spec

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "charts" / "modeldeploy" / "crds" / "modeldeployments.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _schema() -> dict:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_chart_crd_matches_the_code() -> None:
    assert CRD_FILE.read_text() == render_crd(), (
        "charts/modeldeploy/crds/modeldeployments.yaml is stale: run"
        " `modeldeploy operator crd > charts/modeldeploy/crds/modeldeployments.yaml`"
    )


def test_crd_names_printer_columns_and_status_subresource() -> None:
    crd = build_crd()
    assert crd["spec"]["names"]["shortNames"] == ["md"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    cols = [c["name"].upper() for c in version["additionalPrinterColumns"]]
    assert cols == ["MODEL", "STABLE", "CANARY", "WEIGHT", "PHASE", "AGE"]


def _walk(node: dict, path: str = "spec"):
    yield path, node
    for key, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{key}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")


def _is_scalar_items(path: str) -> bool:
    nodes = dict(_walk(_schema()["properties"]["spec"]))
    return nodes[path].get("type") != "object"


def test_every_spec_field_has_a_description_for_kubectl_explain() -> None:
    missing = [p for p, n in _walk(_schema()["properties"]["spec"]) if not n.get("description")]
    # Items of a list of scalars are described by the list itself.
    missing = [p for p in missing if not (p.endswith("[]") and _is_scalar_items(p))]
    assert missing == []


def test_crd_schema_is_structural_enough_for_jsonschema() -> None:
    jsonschema.Draft7Validator.check_schema(to_jsonschema(_schema()))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid_against_the_crd_and_the_parser(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "modeldeploy.io/v1alpha1" and doc["kind"] == "ModelDeployment"
    jsonschema.validate(doc, to_jsonschema(_schema()))
    parse_spec(doc["spec"])


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


def test_schema_refuses_a_wrong_resource() -> None:
    bad = {"apiVersion": "x", "kind": "y", "spec": {"model": {"name": "m"}, "runtime": "tf"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, to_jsonschema(_schema()))


def test_status_written_by_the_operator_passes_the_schema() -> None:
    from modeldeploy.operator.api.status import CanaryState, Status, VersionRef

    status = Status(phase="Progressing", stable=VersionRef("1"), canary=CanaryState("2", weight=10))
    doc = {"spec": {"model": {"name": "m"}}, "status": status.to_dict()}
    jsonschema.validate(doc, to_jsonschema(_schema()))
