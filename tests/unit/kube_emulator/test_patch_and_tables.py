"""JSON patch (RFC 6902) as applied, merge patch, and the Table kubectl prints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.kube_patch import PatchError, json_patch, merge_patch
from tests.support.kube_tables import human_duration, is_table_request, jsonpath, table

DOC = {"metadata": {"resourceVersion": "7", "finalizers": ["a/b", "c/d"]}, "spec": {"x": 1}}


def test_remove_deletes_the_key_instead_of_merging_it_back():
    out = json_patch(DOC, [{"op": "remove", "path": "/metadata/finalizers"}])
    assert "finalizers" not in out["metadata"] and "finalizers" in DOC["metadata"]
    out = json_patch(DOC, [{"op": "remove", "path": "/metadata/finalizers/0"}])
    assert out["metadata"]["finalizers"] == ["c/d"]


def test_kopf_finalizer_removal_with_its_resource_version_test():
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "remove", "path": "/metadata/finalizers"},
    ]
    assert "finalizers" not in json_patch(DOC, ops)["metadata"]
    ops[0]["value"] = "6"
    with pytest.raises(PatchError, match="testing value /metadata/resourceVersion failed"):
        json_patch(DOC, ops)


def test_add_replace_move_copy_and_escapes():
    ops = [
        {"op": "add", "path": "/metadata/finalizers/-", "value": "e/f"},
        {"op": "add", "path": "/metadata/finalizers/0", "value": "z"},
        {"op": "replace", "path": "/spec/x", "value": 2},
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/annotations/a~1b~0c", "value": "v"},
        {"op": "copy", "from": "/spec/x", "path": "/spec/y"},
        {"op": "move", "from": "/spec/y", "path": "/spec/z"},
    ]
    out = json_patch(DOC, ops)
    assert out["metadata"]["finalizers"] == ["z", "a/b", "c/d", "e/f"]
    assert out["metadata"]["annotations"] == {"a/b~c": "v"}
    assert out["spec"] == {"x": 2, "z": 2}


@pytest.mark.parametrize(
    "op",
    [
        {"op": "remove", "path": "/spec/missing"},
        {"op": "replace", "path": "/spec/missing", "value": 1},
        {"op": "add", "path": "/nowhere/deep", "value": 1},  # the parent must exist
        {"op": "remove", "path": "/metadata/finalizers/5"},
        {"op": "test", "path": "/spec/x", "value": 2},
        {"op": "jump", "path": "/spec/x"},
        {"op": "add", "path": "/spec/x"},
    ],
)
def test_operations_that_do_not_apply_fail_the_whole_patch(op):
    with pytest.raises(PatchError):
        json_patch(DOC, [{"op": "replace", "path": "/spec/x", "value": 9}, op])
    assert DOC["spec"] == {"x": 1}


def test_merge_patch_null_removes_and_lists_replace():
    assert merge_patch(DOC, {"metadata": {"finalizers": None}, "spec": {"l": [1]}}) == {
        "metadata": {"resourceVersion": "7"},
        "spec": {"x": 1, "l": [1]},
    }


def test_jsonpath_simple_paths():
    obj = {"a": {"b": [{"c": 1}], "d.e": "x"}}
    assert jsonpath(obj, ".a.b[0].c") == (True, 1)
    assert jsonpath(obj, "{.a['d.e']}") == (True, "x")
    assert jsonpath(obj, ".a.missing") == (False, None)
    assert jsonpath(obj, ".a.b[3]") == (False, None)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (0, "0s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (50 * 3600, "2d2h"),
        (10 * 86400, "10d"),
        (800 * 86400, "2y70d"),
    ],
)
def test_ages_read_as_kubectl_shows_them(seconds, shown):
    assert human_duration(seconds) == shown


def test_table_has_name_then_printer_columns_with_cells_from_json_paths():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    created = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj = {
        "metadata": {"name": "one", "creationTimestamp": created},
        "spec": {"model": {"name": "m"}},
        "status": {"canary": {"weight": 25}},
    }
    columns = [
        {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
        {"name": "Weight", "type": "integer", "jsonPath": ".status.canary.weight"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Where."},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    out = table([obj], columns, "42", now)
    assert out["kind"] == "Table" and out["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in out["columnDefinitions"]] == [
        "Name",
        "Model",
        "Weight",
        "Phase",
        "Age",
    ]
    assert out["columnDefinitions"][2]["description"].endswith(": .status.canary.weight")
    assert out["columnDefinitions"][3]["description"] == "Where."
    assert out["rows"][0]["cells"] == ["one", "m", 25, None, "5m"]
    assert out["rows"][0]["object"]["metadata"]["name"] == "one"
    assert out["metadata"]["resourceVersion"] == "42"


def test_a_crd_without_printer_columns_gets_age():
    out = table([], None, "1")
    assert [c["name"] for c in out["columnDefinitions"]] == ["Name", "Age"]


def test_only_a_table_first_accept_header_is_a_table_request():
    assert is_table_request(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
        "g=meta.k8s.io,application/json"
    )
    assert not is_table_request("application/json")
    assert not is_table_request("application/json, application/json;as=Table;v=v1;g=meta.k8s.io")
