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
