"""A small Kubernetes API for the operator scale benchmark: one namespaced custom resource.

The test suite's emulator (``tests/support/kube_emulator.py``) is far more faithful, but the
tools never import tests. The benchmark needs only what kopf and the operator do with
ModelDeployments: discovery, list and watch (resuming from a resourceVersion, ending at
``timeoutSeconds``), get, create, merge patches of the object and of its ``status``
subresource (409 on a stale ``metadata.resourceVersion``), and Events (accepted, counted,
dropped). Every request is counted by verb, so the benchmark can report what the operator
asked of the API server. It runs in its own thread (``serve``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

GROUP, VERSION, PLURAL, KIND = "modeldeploy.io", "v1alpha1", "modeldeployments", "ModelDeployment"
CRD_GROUP = "apiextensions.k8s.io"
NAMESPACE = "ml"
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _group(name: str, version: str) -> dict[str, Any]:
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def _resource(plural: str, kind: str, namespaced: bool = False) -> dict[str, Any]:
    return {"name": plural, "singularName": kind.lower(), "namespaced": namespaced,
            "kind": kind, "verbs": VERBS}  # fmt: skip


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _json_patch(target: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any] | None:
    """RFC 6902 ``add``/``replace``/``remove``/``test`` (what kopf sends); None if a test fails."""
    doc = copy.deepcopy(target)
    for op in ops:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]
        ]
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op["op"] == "test" and (index >= len(node) or node[index] != op["value"]):
                return None
            if op["op"] == "add":
                node.insert(index, op["value"])
            elif op["op"] == "replace":
                node[index] = op["value"]
            elif op["op"] == "remove":
                del node[index]
        elif op["op"] == "test":
            if node.get(last) != op["value"]:
                return None
        elif op["op"] in ("add", "replace"):
            node[last] = op["value"]
        elif op["op"] == "remove":
            node.pop(last, None)
    return doc


class KubeStub:
    """The object store, the change log watches resume from, and the request counts."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name) -> obj
        self.log: list[tuple[int, str, dict[str, Any]]] = []  # (revision, type, object)
        self.revision = 1
        self.requests: Counter[str] = Counter()
        self.changed: asyncio.Condition | None = None

    # -- the store ------------------------------------------------------------------------
    def _record(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self.log.append((self.revision, kind, copy.deepcopy(obj)))
        if len(self.log) > 20000:  # watches older than this relist (410), as on a real server
            del self.log[:10000]
        return obj

    async def _notify(self) -> None:
        assert self.changed is not None
        async with self.changed:
            self.changed.notify_all()

    def count_objects(self) -> int:
        return len(self.objects)

    def statuses(self) -> list[dict[str, Any]]:
        return [dict(o.get("status") or {}) for o in list(self.objects.values())]

    # -- HTTP -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.changed is None:
            self.changed = asyncio.Condition()
        parts = request.path.strip("/").split("/")
        watch = request.query.get("watch") in ("true", "1")
        self.requests["watch" if watch else request.method.lower()] += 1
        if parts == ["api"]:
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if parts == ["apis"]:
            groups = [_group(GROUP, VERSION), _group(CRD_GROUP, "v1")]
            return web.json_response({"kind": "APIGroupList", "groups": groups})
        if parts == ["api", "v1"]:
            core = [_resource("events", "Event", True), _resource("namespaces", "Namespace")]
            return web.json_response({"kind": "APIResourceList", "resources": core})
        if parts == ["apis", CRD_GROUP, "v1"]:
            crds = [_resource("customresourcedefinitions", "CustomResourceDefinition")]
            return web.json_response({"kind": "APIResourceList", "resources": crds})
        if parts == ["api", "v1", "namespaces"]:  # kopf lists and watches them
            items = [{"metadata": {"name": NAMESPACE, "resourceVersion": "1"}}]
            return await self._fixed(request, "NamespaceList", items, watch)
        if parts == ["apis", CRD_GROUP, "v1", "customresourcedefinitions"]:
            return await self._fixed(request, "CustomResourceDefinitionList", [], watch)
        if parts == ["apis", GROUP, VERSION]:
            return web.json_response(self._discovery())
        if parts[:3] == ["api", "v1", "namespaces"] and parts[4:5] == ["events"]:
            return web.json_response(await request.json(), status=201)
        if parts[:3] == ["apis", GROUP, VERSION] and PLURAL in parts:
            return await self._resource(request, parts[3:], watch)
        return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)

    async def _fixed(
        self, request: web.Request, kind: str, items: list[dict[str, Any]], watch: bool
    ) -> web.StreamResponse:
        """A list that never changes: its watch streams nothing until its timeout."""
        if not watch:
            meta = {"resourceVersion": "1"}
            return web.json_response({"kind": kind, "metadata": meta, "items": items})
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        await asyncio.sleep(min(float(request.query.get("timeoutSeconds") or 60), 600))
        return response

    def _discovery(self) -> dict[str, Any]:
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        main = {"name": PLURAL, "singularName": KIND.lower(), "namespaced": True, "kind": KIND,
                "verbs": verbs, "shortNames": ["md"]}  # fmt: skip
        status = {"name": f"{PLURAL}/status", "singularName": "", "namespaced": True,
                  "kind": KIND, "verbs": ["get", "patch", "update"]}  # fmt: skip
        return {"kind": "APIResourceList", "groupVersion": f"{GROUP}/{VERSION}",
                "resources": [main, status]}  # fmt: skip

    async def _resource(self, request: web.Request, rest: list[str], watch: bool) -> Any:
        namespace = rest[1] if rest[:1] == ["namespaces"] else None
        tail = rest[3:] if namespace is not None else rest[1:]
        if not tail:
            if request.method == "POST":
                return await self._create(namespace or "default", await request.json())
            if watch:
                return await self._watch(request, namespace)
            return self._list(namespace)
        key = (namespace or "default", tail[0])
        obj = self.objects.get(key)
        if obj is None:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"},
                                     status=404)  # fmt: skip
        if request.method == "GET":
            return web.json_response(obj)
        if request.method == "PATCH":
            return await self._patch(key, obj, await request.json(), tail[1:] == ["status"])
        if request.method == "DELETE":
            del self.objects[key]
            self._record("DELETED", copy.deepcopy(obj))
            await self._notify()
            return web.json_response(obj)
        return web.json_response({"kind": "Status", "code": 405}, status=405)

    def _list(self, namespace: str | None) -> web.Response:
        items = [o for (ns, _), o in sorted(self.objects.items()) if namespace in (None, ns)]
        meta = {"resourceVersion": str(self.revision)}
        return web.json_response({"kind": f"{KIND}List", "apiVersion": f"{GROUP}/{VERSION}",
                                  "metadata": meta, "items": items})  # fmt: skip

    async def _create(self, namespace: str, body: dict[str, Any]) -> web.Response:
        meta = body.setdefault("metadata", {})
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), generation=1,
                    creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
        key = (namespace, meta["name"])
        if key in self.objects:
            return web.json_response({"kind": "Status", "code": 409, "reason": "AlreadyExists"},
                                     status=409)  # fmt: skip
        body.pop("status", None)
        self.objects[key] = self._record("ADDED", body)
        await self._notify()
        return web.json_response(body, status=201)

    async def _patch(
        self, key: tuple[str, str], obj: dict[str, Any], patch: Any, status: bool
    ) -> web.Response:
        if isinstance(patch, list):
            patched = _json_patch(obj, patch)
            if patched is None:
                return web.json_response({"kind": "Status", "code": 422, "reason": "Invalid"},
                                         status=422)  # fmt: skip
            patch = {k: v for k, v in patched.items() if k in ("metadata", "status")}
            patch["metadata"] = {k: patched["metadata"].get(k) for k in
                                 ("annotations", "labels", "finalizers")}  # fmt: skip
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != obj["metadata"]["resourceVersion"]:
            return web.json_response({"kind": "Status", "code": 409, "reason": "Conflict"},
                                     status=409)  # fmt: skip
        patch = {k: v for k, v in patch.items() if (k == "status") == status or k == "metadata"}
        if "metadata" in patch:
            patch["metadata"] = {k: v for k, v in patch["metadata"].items()
                                 if k in ("annotations", "labels", "finalizers")}  # fmt: skip
        new = _merge(obj, patch)
        if not status and new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
        if new == obj:
            return web.json_response(obj)
        self.objects[key] = self._record("MODIFIED", new)
        await self._notify()
        return web.json_response(new)

    async def _watch(self, request: web.Request, namespace: str | None) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 300)
        if since and self.log and since < self.log[0][0] - 1:
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Gone"}}
            return web.Response(text=json.dumps(gone) + "\n", content_type="application/json")
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        assert self.changed is not None
        try:
            while loop.time() < deadline:
                for revision, kind, obj in self.log[self._after(since) :]:
                    since = revision
                    if namespace in (None, obj["metadata"].get("namespace")):
                        line = json.dumps({"type": kind, "object": obj}) + "\n"
                        await response.write(line.encode())
                async with self.changed:
                    try:
                        await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
                    except TimeoutError:
                        break
        except ConnectionError:
            pass  # the client ended the watch (kopf does, on its own timeout)
        return response

    def _after(self, since: int) -> int:
        """Index of the first logged change newer than ``since`` (the log is sorted)."""
        low, high = 0, len(self.log)
        while low < high:
            mid = (low + high) // 2
            if self.log[mid][0] <= since:
                low = mid + 1
            else:
                high = mid
        return low


async def _shutdown(runner: web.AppRunner) -> None:
    """Stop serving, and end the watches still streaming (they would outlive the loop)."""
    await runner.cleanup()
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextmanager
def serve(stub: KubeStub) -> Iterator[str]:
    """Serve ``stub`` on a free loopback port from its own thread; yields the base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(stub.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="kube-stub", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the benchmark's API server did not start")
    try:
        yield f"http://127.0.0.1:{holder['port']}"
    finally:
        done = asyncio.run_coroutine_threadsafe(_shutdown(holder["runner"]), loop)
        with suppress(Exception):
            done.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
