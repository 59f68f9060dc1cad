"""A Kubernetes API emulator faithful enough for kopf and the operator: kmock plus state rules.

``kmock.KubernetesEmulator`` serves discovery and a naive object store. This subclass
keeps kmock's discovery (from ``self.resources``) and serves object requests itself with
the rules kopf relies on: server-set uid/resourceVersion/generation/creationTimestamp,
201 on create, PUT, the status subresource, 409 on a stale resourceVersion, label
selectors, watches that resume from a resourceVersion and end at timeoutSeconds,
finalizers, and listing and watching namespaces. Every object request is recorded in ``calls``.
Run it with ``serve_in_thread`` (its own loop and thread, on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock

VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
ALL_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Call:
    """One object request as RBAC sees it (``resource`` includes a subresource: ``x/status``)."""

    verb: str
    group: str
    resource: str
    namespace: str
    agent: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge(old: Any, patch: Any) -> Any:
    """RFC 7386 merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(old) if isinstance(old, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any] | None:
    """RFC 6902 add/remove/replace/test (None: a test failed or a path is missing)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]
        ]
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        index: Any = (len(node) if last == "-" else int(last)) if isinstance(node, list) else last
        if op["op"] == "test":
            if isinstance(node, dict) and node.get(index) != op["value"]:
                return None
        elif op["op"] == "remove":
            if isinstance(node, dict) and index not in node:
                return None
            del node[index]
        elif op["op"] == "add" and isinstance(node, list):
            node.insert(index, op["value"])
        else:  # add to an object, or replace
            node[index] = op["value"]
    return doc


def _selected(obj: dict[str, Any], selector: str) -> bool:
    """Equality-based label selectors: ``a=b,c!=d,e`` (what clients send in practice)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    store: dict[tuple[str, str, str, str], dict[str, Any]] = attrs.field(factory=dict, init=False)
    log: list[tuple[int, tuple[str, str, str], dict[str, Any]]] = attrs.field(
        factory=list, init=False
    )
    calls: list[Call] = attrs.field(factory=list, init=False)
    namespaces: set[str] = attrs.field(factory=lambda: {"default"}, init=False)
    revision: int = attrs.field(default=1, init=False)
    changed: asyncio.Condition | None = attrs.field(default=None, init=False)

    def declare(self, group: str, version: str, plural: str, kind: str, **info: Any) -> None:
        """Serve a resource (discovery included); ``subresources={"status"}`` to split status."""
        info.setdefault("namespaced", True)
        info.setdefault("verbs", ALL_VERBS)
        key = f"{group}/{version}/{plural}" if group else f"{version}/{plural}"
        self.resources[key] = kmock.ResourceInfo(kind=kind, singular=kind.lower(), **info)

    def objects_of(self, group: str, plural: str, namespace: str | None = None) -> list[dict]:
        return [
            copy.deepcopy(o)
            for (g, p, ns, _), o in sorted(self.store.items())
            if g == group and p == plural and namespace in (None, ns)
        ]

    def _info(self, group: str, version: str, plural: str) -> kmock.ResourceInfo | None:
        for res in self.resources:
            if (res.group, res.version, res.plural) == (group, version, plural):
                return self.resources[res]
        return None

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        parts = raw.path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:  # kmock cannot parse it
            agent = raw.headers.get("User-Agent", "")
            watch = len(parts) == 3 and raw.query.get("watch") in ("true", "1")
            verb = "watch" if watch else "list" if len(parts) == 3 else "get"
            self.calls.append(Call(verb, "", "namespaces", "", agent))
            if watch:
                return await self._watch_namespaces(raw)
            items = self._namespace_items()
            if len(parts) == 4:
                found = [i for i in items if i["metadata"]["name"] == parts[3]]
                return self._json(found[0] if found else self._status(404, "NotFound"))
            return self._json(
                {
                    "kind": "NamespaceList",
                    "apiVersion": "v1",
                    "items": items,
                    "metadata": {"resourceVersion": str(self.revision)},
                }
            )
        return await super().__call__(raw)

    def _namespace_items(self) -> list[dict[str, Any]]:
        names = self.namespaces | {ns for (_, _, ns, _) in self.store if ns}
        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
            for n in sorted(names)
        ]

    async def _watch_namespaces(self, raw: aiohttp.web.BaseRequest) -> Any:
        """Namespaces come and never go: each one is ADDED once, then the watch idles."""
        if self.changed is None:
            self.changed = asyncio.Condition()
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(raw.query.get("timeoutSeconds") or 3600)
        sent: set[str] = set()
        while loop.time() < deadline and not raw.transport.is_closing():  # type: ignore[union-attr]
            for item in self._namespace_items():
                if item["metadata"]["name"] not in sent:
                    sent.add(item["metadata"]["name"])
                    await response.write(
                        json.dumps({"type": "ADDED", "object": item}).encode() + b"\n"
                    )
            async with self.changed:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), min(1.0, deadline - loop.time()))
        await response.write_eof()
        return response

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        info = (
            None
            if res is None or not res.plural
            else self._info(res.group, res.version, res.plural)
        )
        if info is None or request.subresource not in (None, "status"):
            return await super()._handle(request)  # discovery, or a 404 from kmock
        if self.changed is None:
            self.changed = asyncio.Condition()
        raw: aiohttp.web.BaseRequest = request._raw_request  # type: ignore[assignment]
        verb = "watch" if request.action == kmock.action.WATCH else VERBS.get(raw.method, "?")
        if verb == "get" and request.name is None:
            verb = "list"
        plural = res.plural + (f"/{request.subresource}" if request.subresource else "")
        agent = request.headers.get("User-Agent", "")
        self.calls.append(Call(verb, res.group, plural, request.namespace or "", agent))
        key = (res.group, res.plural, request.namespace or "")
        if verb == "watch":
            return await self._watch(request, raw, key)
        async with self.changed:
            code, body = self._serve(verb, key, request, info)
            if code < 300:
                self.changed.notify_all()
        return self._json(body, code)

    def _serve(
        self, verb: str, key: tuple[str, str, str], request: Any, info: Any
    ) -> tuple[int, dict]:
        group, plural, ns = key
        split = "status" in info.subresources
        on_status = request.subresource == "status"
        if verb == "list":
            selector = request.params.get("labelSelector", "")
            items = [
                o
                for o in self.objects_of(group, plural, request.namespace)
                if _selected(o, selector)
            ]
            meta = {"resourceVersion": str(self.revision)}
            return 200, {
                "apiVersion": "v1",
                "kind": f"{info.kind}List",
                "metadata": meta,
                "items": items,
            }
        data = request.data if isinstance(request.data, dict) else None
        if verb == "patch" and isinstance(request.data, list):  # a JSON patch
            current = self.store.get((*key, request.name or ""))
            data = None if current is None else _json_patch(current, request.data)
            if current is not None and data is None:
                return 422, self._status(422, "Invalid", "the JSON patch does not apply")
        if verb == "create":
            if data is None:
                return 400, self._status(400, "BadRequest", "a JSON object is required")
            meta = data.setdefault("metadata", {})
            meta.setdefault("name", meta.get("generateName", "") + uuid.uuid4().hex[:5])
            meta["namespace"] = ns or meta.get("namespace", "")
            if (*key, meta["name"]) in self.store:
                return 409, self._status(409, "AlreadyExists", f"{meta['name']} already exists")
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
            meta.pop("resourceVersion", None)
            if split:
                data.pop("status", None)
            return 201, self._save((*key, meta["name"]), data, None)
        current = self.store.get((*key, request.name or ""))
        if current is None or (on_status and verb not in ("get", "patch", "update")):
            return 404, self._status(404, "NotFound", f"{plural} {request.name!r} not found")
        if verb == "get":
            return 200, copy.deepcopy(current)
        if verb == "delete":
            if current["metadata"].get("finalizers") or []:
                new = _merge(current, {"metadata": {"deletionTimestamp": _now()}})
                return 200, self._save((*key, request.name), new, current)
            return 200, self._save((*key, request.name), None, current)
        if data is None:
            return 400, self._status(400, "BadRequest", "a JSON object is required")
        wanted = str((data.get("metadata") or {}).get("resourceVersion") or "")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            msg = "the object has been modified; please apply your changes to the latest version"
            return 409, self._status(409, "Conflict", msg)
        new = _merge(current, data) if verb == "patch" else copy.deepcopy(data)
        if on_status:  # the status subresource changes the status only
            new = {**current, "status": new.get("status")}
        elif split:  # the main resource never changes the status
            new["status"] = current.get("status")
        for field in ("uid", "creationTimestamp", "generation", "namespace", "name"):
            new.setdefault("metadata", {})[field] = current["metadata"].get(field)
        if new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = int(current["metadata"].get("generation") or 0) + 1
        if new.get("status") is None:
            new.pop("status", None)
        gone = new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers")
        return 200, self._save((*key, request.name), None if gone else new, current)

    def _save(self, full_key: tuple, new: dict | None, old: dict | None) -> dict[str, Any]:
        self.revision += 1
        if new is None:
            assert old is not None
            kept = copy.deepcopy(old)
            kept["metadata"]["resourceVersion"] = str(self.revision)
            del self.store[full_key]
            self.log.append((self.revision, full_key[:3], {"type": "DELETED", "object": kept}))
            return kept
        new["metadata"]["resourceVersion"] = str(self.revision)
        self.store[full_key] = copy.deepcopy(new)
        kind = "ADDED" if old is None else "MODIFIED"
        self.log.append((self.revision, full_key[:3], {"type": kind, "object": copy.deepcopy(new)}))
        return new

    async def _watch(self, request: Any, raw: aiohttp.web.BaseRequest, key: tuple) -> Any:
        group, plural, ns = key
        selector = request.params.get("labelSelector", "")
        since = int(request.params.get("resourceVersion") or 0)
        timeout = float(request.params.get("timeoutSeconds") or 3600)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        assert self.changed is not None
        if not since:  # no version: the current state as ADDED, then the changes
            since = self.revision
            for obj in self.objects_of(group, plural, request.namespace):
                if _selected(obj, selector):
                    await response.write(
                        json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"
                    )
        while loop.time() < deadline and not raw.transport.is_closing():  # type: ignore[union-attr]
            async with self.changed:
                batch = self._since(since, group, plural, ns)
                if not batch:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
                    batch = self._since(since, group, plural, ns)
            for rv, event in batch:
                since = rv
                if _selected(event["object"], selector):
                    await response.write(json.dumps(event).encode() + b"\n")
        await response.write_eof()
        return response

    def _since(self, since: int, group: str, plural: str, ns: str) -> list[tuple[int, dict]]:
        return [
            (rv, event)
            for rv, (g, p, n), event in self.log
            if rv > since and (g, p) == (group, plural) and (not ns or n == ns)
        ]

    @staticmethod
    def _status(code: int, reason: str, message: str = "") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message or reason,
            "metadata": {},
        }

    @staticmethod
    def _json(body: dict[str, Any], code: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.json_response(body, status=code)


def for_modeldeploy() -> KubeEmulator:
    """An emulator for what the operator touches: ModelDeployments, InferenceServices, Events."""
    emulator = KubeEmulator()
    emulator.declare(
        "modeldeploy.io",
        "v1alpha1",
        "modeldeployments",
        "ModelDeployment",
        subresources={"status"},
        shortnames={"md"},
    )
    emulator.declare(
        "serving.kserve.io",
        "v1beta1",
        "inferenceservices",
        "InferenceService",
        subresources={"status"},
        shortnames={"isvc"},
    )
    emulator.declare("", "v1", "events", "Event")
    emulator.declare("", "v1", "namespaces", "Namespace", namespaced=False)  # kopf's backbone
    emulator.declare(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
    )
    return emulator


@contextmanager
def serve_in_thread(emulator: KubeEmulator) -> Iterator[str]:
    """Serve ``emulator`` on 127.0.0.1 from its own thread and loop; yields the base URL."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started, stop = threading.Event(), None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        async with emulator, kmock.Server(emulator, host="127.0.0.1") as server:
            ready["url"] = str(server.url).rstrip("/")
            started.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("the Kubernetes emulator did not start")
    try:
        yield ready["url"]
    finally:
        loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
        thread.join(timeout=15)
        loop.close()
