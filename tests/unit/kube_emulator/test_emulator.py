"""The emulator keeps the API server rules kopf and the operator rely on (one test per rule)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.operator.api.crd import build_crd
from tests.support.kube_emulator import for_modeldeploy, serve_in_thread

MD = "/apis/modeldeploy.io/v1alpha1/namespaces/ml/modeldeployments"


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None, ctype: str = "") -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": ctype or "application/json", "User-Agent": "emulator-test"}
        req = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def patch(self, path: str, body: Any) -> tuple[int, Any]:
        return self.call("PATCH", path, body, "application/merge-patch+json")

    def watch(self, path: str) -> list[dict]:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[tuple[Any, str]]:
    emulator = for_modeldeploy()
    with serve_in_thread(emulator) as url:
        yield emulator, url


@pytest.fixture
def api(emulator_url) -> Api:
    return Api(emulator_url[1])


def md(name: str, **labels: str) -> dict:
    meta = {"name": name, "labels": labels}
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": meta,
        "spec": {"model": {"name": "m"}},
        "status": {"phase": "Forged"},
    }


def test_create_answers_201_with_server_set_metadata_and_ignores_status(api):
    code, obj = api.call("POST", MD, md("create"))
    assert code == 201
    meta = obj["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z") and meta["namespace"] == "ml"
    assert "status" not in obj  # the status subresource owns status
    assert api.call("POST", MD, md("create"))[0] == 409


def test_the_kubernetes_client_gets_the_created_object(emulator_url):
    import kubernetes

    config = kubernetes.client.Configuration(host=emulator_url[1])
    client = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))
    created = client.create_namespaced_custom_object(
        "modeldeploy.io", "v1alpha1", "ml", "modeldeployments", md("client")
    )
    assert created["metadata"]["name"] == "client"  # None on kmock's plain 200


def test_main_patch_keeps_status_and_generation_bumps_on_spec_only(api):
    api.call("POST", MD, md("split"))
    code, obj = api.patch(f"{MD}/split", {"metadata": {"labels": {"a": "b"}}, "status": {"x": 1}})
    assert code == 200 and "status" not in obj and obj["metadata"]["generation"] == 1
    spec = obj["spec"]
    code, obj = api.patch(f"{MD}/split/status", {"status": {"phase": "Stable"}, "spec": {"y": 1}})
    assert obj["status"] == {"phase": "Stable"} and obj["spec"] == spec
    assert obj["metadata"]["generation"] == 1
    _, obj = api.patch(f"{MD}/split", {"spec": {"model": {"name": "n"}}})
    assert obj["metadata"]["generation"] == 2 and obj["status"] == {"phase": "Stable"}


def test_put_with_a_stale_resource_version_is_a_conflict(api):
    _, first = api.call("POST", MD, md("stale"))
    _, second = api.patch(f"{MD}/stale", {"metadata": {"labels": {"v": "2"}}})
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    code, body = api.call("PUT", f"{MD}/stale", first)
    assert code == 409 and body["reason"] == "Conflict"
    second["spec"]["model"]["name"] = "put"
    code, obj = api.call("PUT", f"{MD}/stale", second)
    assert code == 200 and obj["spec"]["model"]["name"] == "put"
    assert obj["metadata"]["uid"] == first["metadata"]["uid"]


def test_lists_filter_by_label_selector_and_namespaces_are_listed(api):
    api.call("POST", MD, md("red", colour="red"))
    api.call("POST", MD, md("blue", colour="blue"))
    _, listed = api.call("GET", f"{MD}?labelSelector=colour%3Dred")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["red"]
    _, listed = api.call("GET", f"{MD}?labelSelector=colour,colour!%3Dred")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["blue"]
    _, namespaces = api.call("GET", "/api/v1/namespaces")
    assert {"ml", "default"} <= {n["metadata"]["name"] for n in namespaces["items"]}


def test_namespace_watch_adds_each_namespace_once_and_ends_at_the_timeout(api):
    new = "/apis/modeldeploy.io/v1alpha1/namespaces/watched-ns/modeldeployments"
    threading.Timer(0.2, lambda: api.call("POST", new, md("elsewhere"))).start()
    started = time.monotonic()
    events = api.watch("/api/v1/namespaces?watch=true&timeoutSeconds=1")
    assert 1 <= time.monotonic() - started < 5
    names = [e["object"]["metadata"]["name"] for e in events]
    assert {e["type"] for e in events} == {"ADDED"} and len(names) == len(set(names))
    assert {"default", "watched-ns"} <= set(names) and names[-1] == "watched-ns"


def test_watch_resumes_after_the_resource_version_and_ends_at_the_timeout(api):
    _, obj = api.call("POST", MD, md("watched"))
    version = obj["metadata"]["resourceVersion"]
    change = {"spec": {"model": {"name": "w"}}}
    threading.Timer(0.2, lambda: api.patch(f"{MD}/watched", change)).start()
    started = time.monotonic()
    events = api.watch(f"{MD}?watch=true&resourceVersion={version}&timeoutSeconds=1")
    assert 0.8 < time.monotonic() - started < 5
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "watched")
    ]  # no replay of the existing objects as ADDED


def test_delete_waits_for_finalizers(api):
    body = md("final")
    body["metadata"]["finalizers"] = ["x/y"]
    api.call("POST", MD, body)
    code, obj = api.call("DELETE", f"{MD}/final")
    assert code == 200 and obj["metadata"]["deletionTimestamp"]
    assert api.call("GET", f"{MD}/final")[0] == 200
    api.patch(f"{MD}/final", {"metadata": {"finalizers": None}})
    assert api.call("GET", f"{MD}/final")[0] == 404


def test_discovery_events_and_call_records(emulator_url, api):
    _, resources = api.call("GET", "/apis/modeldeploy.io/v1alpha1")
    names = {r["name"] for r in resources["resources"]}
    assert names == {"modeldeployments", "modeldeployments/status"}
    _, isvc = api.call("GET", "/apis/serving.kserve.io/v1beta1")
    assert isvc["resources"][0]["kind"] == "InferenceService"
    event = {"metadata": {"generateName": "ev-"}, "reason": "Test", "message": "hello"}
    code, posted = api.call("POST", "/api/v1/namespaces/ml/events", event)
    assert code == 201 and posted["metadata"]["name"].startswith("ev-")
    calls = {(c.verb, c.group, c.resource) for c in emulator_url[0].calls}
    assert ("create", "", "events") in calls and (
        "patch",
        "modeldeploy.io",
        "modeldeployments/status",
    ) in calls


def call_with_headers(url: str, method: str, path: str, body: Any, headers: dict) -> tuple:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def rollout_schema() -> dict:
    """The served CRD's schema of spec.rollout.steps items: bounds come from the CRD, not here."""
    crd = build_crd()
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec["properties"]["rollout"]["properties"]["steps"]["items"]


def test_invalid_writes_are_refused_with_the_api_servers_422(api):
    top = rollout_schema()["maximum"]
    body = md("invalid")
    body["spec"]["rollout"] = {"steps": [top + 1]}
    code, status = api.call("POST", MD, body)
    assert code == 422 and status["reason"] == "Invalid"
    assert status["message"] == (
        f'ModelDeployment.modeldeploy.io "invalid" is invalid: spec.rollout.steps[0]: Invalid'
        f" value: {top + 1}: spec.rollout.steps[0] in body should be less than or equal to {top}"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.rollout.steps[0]",
            "message": f"Invalid value: {top + 1}: spec.rollout.steps[0] in body should be less"
            f" than or equal to {top}",
        }
    ]
    assert api.call("GET", f"{MD}/invalid")[0] == 404
    api.call("POST", MD, md("valid-then-patched"))
    code, status = api.patch(f"{MD}/valid-then-patched", {"spec": {"model": {"name": None}}})
    assert code == 422 and "spec.model.name: Required value" in status["message"]


def test_creation_defaults_from_the_crd(api):
    _, obj = api.call("POST", MD, md("defaulted"))
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    defaults = {
        k: v["default"]
        for k, v in schema["properties"]["spec"]["properties"].items()
        if "default" in v
    }
    scalars = {k: v for k, v in defaults.items() if not isinstance(v, dict)}
    assert scalars and all(obj["spec"][k] == v for k, v in scalars.items())
    # An absent section defaults to {} and is then defaulted inside, as the API server does.
    sections = [k for k, v in defaults.items() if isinstance(v, dict)]
    rollout = schema["properties"]["spec"]["properties"]["rollout"]["properties"]
    assert "rollout" in sections
    assert obj["spec"]["rollout"]["steps"] == rollout["steps"]["default"]


@pytest.mark.parametrize("mode", ["Strict", "Warn", "Ignore", ""])
def test_unknown_fields_by_field_validation(emulator_url, mode):
    body = md(f"unknown-{mode.lower() or 'default'}")
    body["spec"]["bogus"] = 1
    body["spec"]["model"]["alsoBogus"] = 2
    query = f"?fieldValidation={mode}" if mode else ""
    headers = {"Content-Type": "application/json"}
    code, obj, got = call_with_headers(emulator_url[1], "POST", MD + query, body, headers)
    if mode == "Strict":
        assert code == 400 and obj["reason"] == "BadRequest"
        assert obj["message"] == (
            'ModelDeployment in version "v1alpha1" cannot be handled as a ModelDeployment:'
            ' strict decoding error: unknown field "spec.bogus", unknown field'
            ' "spec.model.alsoBogus"'
        )
        return
    assert code == 201 and "bogus" not in obj["spec"] and "alsoBogus" not in obj["spec"]["model"]
    if mode == "Ignore":
        assert "Warning" not in got
    else:  # Warn is the server's default
        assert got.get_all("Warning") == [
            '299 - "unknown field \\"spec.bogus\\""',
            '299 - "unknown field \\"spec.model.alsoBogus\\""',
        ]


def test_a_json_patch_remove_of_the_last_finalizer_completes_the_deletion(api):
    body = md("json-final")
    body["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    api.call("POST", MD, body)
    _, obj = api.call("DELETE", f"{MD}/json-final")
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "remove", "path": "/metadata/finalizers"},
    ]
    code, status = api.call("PATCH", f"{MD}/json-final", ops, "application/json-patch+json")
    assert code == 422 and status["reason"] == "Invalid"  # kopf retries on a 422
    ops[0]["value"] = obj["metadata"]["resourceVersion"]
    code, gone = api.call("PATCH", f"{MD}/json-final", ops, "application/json-patch+json")
    assert code == 200 and "finalizers" not in gone["metadata"]
    assert api.call("GET", f"{MD}/json-final")[0] == 404


def test_strategic_merge_patch_is_refused_for_custom_resources(api):
    api.call("POST", MD, md("smp"))
    code, status = api.call(
        "PATCH", f"{MD}/smp", {"spec": {}}, "application/strategic-merge-patch+json"
    )
    assert code == 415 and status["reason"] == "UnsupportedMediaType"


def test_tables_carry_the_crds_printer_columns(emulator_url, api):
    api.call("POST", MD, md("tabled"))
    api.patch(f"{MD}/tabled/status", {"status": {"phase": "Stable", "canary": {"weight": 10}}})
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    headers = {"Accept": accept}
    code, listed, _ = call_with_headers(emulator_url[1], "GET", MD, None, headers)
    columns = build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert code == 200 and listed["kind"] == "Table"
    assert [c["name"] for c in listed["columnDefinitions"]] == ["Name"] + [
        c["name"] for c in columns
    ]
    row = next(r for r in listed["rows"] if r["cells"][0] == "tabled")
    by_name = dict(zip([c["name"] for c in listed["columnDefinitions"]], row["cells"], strict=True))
    assert by_name["Phase"] == "Stable" and by_name["Model"] == "m" and by_name["Weight"] == 10
    _, one, _ = call_with_headers(emulator_url[1], "GET", f"{MD}/tabled", None, headers)
    assert one["kind"] == "Table" and len(one["rows"]) == 1
    assert api.call("GET", f"{MD}/tabled")[1]["kind"] == "ModelDeployment"  # JSON by default


def test_openapi_v3_offers_field_validation_on_patch_and_the_schema(api):
    _, index = api.call("GET", "/openapi/v3")
    url = index["paths"]["apis/modeldeploy.io/v1alpha1"]["serverRelativeURL"]
    _, doc = api.call("GET", url)
    gvk = {"group": "modeldeploy.io", "version": "v1alpha1", "kind": "ModelDeployment"}
    patches = [p["patch"] for p in doc["paths"].values() if "patch" in p]
    assert patches and all(p["x-kubernetes-group-version-kind"] == gvk for p in patches)
    for op in patches:
        assert "fieldValidation" in [q["name"] for q in op["parameters"] if q["in"] == "query"]
        assert "application/strategic-merge-patch+json" not in op["requestBody"]["content"]
    schema = doc["components"]["schemas"]["io.modeldeploy.v1alpha1.ModelDeployment"]
    assert schema["x-kubernetes-group-version-kind"] == [gvk]
    served = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"] == served["properties"]["spec"]
    assert "$ref" in json.dumps(schema["properties"]["metadata"])
    _, v2 = api.call("GET", "/openapi/v2")
    assert v2["swagger"] == "2.0" and "io.modeldeploy.v1alpha1.ModelDeployment" in v2["definitions"]


def test_version_is_one_the_chart_supports(api):
    _, version = api.call("GET", "/version")
    assert (int(version["major"]), int(version["minor"])) >= (1, 27)
    assert version["gitVersion"] == f"v{version['major']}.{version['minor']}.0"


def test_a_crd_created_through_the_api_is_served_and_validated(api):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "maximum": 3}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    assert (
        api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0] == 201
    )
    path = "/apis/example.com/v1/namespaces/ml/widgets"
    code, status = api.call("POST", path, {"metadata": {"name": "w"}, "spec": {"size": 4}})
    assert code == 422 and status["details"]["kind"] == "Widget"
    assert api.call("POST", path, {"metadata": {"name": "w"}, "spec": {"size": 3}})[0] == 201


def test_field_selectors_and_streamed_initial_events_end_with_a_bookmark(api):
    api.call("POST", MD, md("picked"))
    _, listed = api.call("GET", f"{MD}?fieldSelector=metadata.name%3Dpicked")
    assert [o["metadata"]["name"] for o in listed["items"]] == ["picked"]
    events = api.watch(
        f"{MD}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        "&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dpicked&timeoutSeconds=1"
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    mark = events[1]["object"]
    assert mark["kind"] == "ModelDeployment" and mark["apiVersion"] == "modeldeploy.io/v1alpha1"
    assert mark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


class Recording(list):
    """A history list that records which positions a reader touched."""

    touched: set[int]

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, int):
            self.touched.add(index)
        return super().__getitem__(index)


def test_watch_history_is_indexed_per_type_and_read_from_the_resource_version_on():
    emulator = for_modeldeploy()
    key = ("modeldeploy.io", "modeldeployments", "ml", "")
    for i in range(1000):  # a benchmark's worth of objects, then changes to other types
        emulator._save((*key[:3], f"o{i}"), {"metadata": {"name": f"o{i}"}}, None)
    since = emulator.revision
    for i in range(500):
        emulator._save(("", "events", "ml", f"e{i}"), {"metadata": {"name": f"e{i}"}}, None)
    emulator._save((*key[:3], "o0"), {"metadata": {"name": "o0", "x": 1}}, {"metadata": {}})
    revisions, events = emulator.history[key[:2]]
    recording = Recording(events)
    recording.touched = set()
    emulator.history[key[:2]] = (revisions, recording)
    batch = emulator._since(since, *key[:3])
    assert [(e["type"], e["object"]["metadata"]["name"]) for _, e in batch] == [("MODIFIED", "o0")]
    assert recording.touched == {1000}  # one change read, none of the 1,000 before it
    assert emulator._since(since, "", "events", "other-ns") == []
