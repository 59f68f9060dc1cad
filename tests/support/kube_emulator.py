"""A Kubernetes API emulator faithful enough for kopf, the operator and kubectl 1.35.

``kmock.KubernetesEmulator`` serves discovery and a naive object store. This subclass
keeps kmock's discovery (from ``self.resources``) and serves object requests itself with
the rules clients rely on: server-set uid/resourceVersion/generation/creationTimestamp,
201 on create, PUT, the status subresource, 409 on a stale resourceVersion, label and
field selectors, watches that resume from a resourceVersion (indexed per resource type),
end at timeoutSeconds and can stream initial events, finalizers, JSON merge and JSON
patches (``kube_patch``), and listing and watching namespaces.

Custom resources whose CRD is registered (``register_crd``, or by creating the CRD
through the API) are pruned, defaulted and validated against the CRD's schema
(``kube_schema``; ``fieldValidation=Strict|Warn|Ignore`` as the API server honours it),
printed as a ``Table`` with the CRD's printer columns (``kube_tables``), and described in
``/openapi/v2`` and ``/openapi/v3`` (``kube_openapi``). ``/version`` reports 1.33.
Every object request is recorded in ``calls``. Run it with ``serve_in_thread``.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock
from multidict import CIMultiDict

from tests.support import kube_openapi, kube_tables
from tests.support.kube_patch import PatchError, json_patch, merge_patch
from tests.support.kube_schema import default, invalid_status, prune, validate, validate_name

VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
ALL_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
# Custom resources take neither; server-side apply is not emulated for any resource.
UNSUPPORTED_PATCHES = ("application/strategic-merge-patch+json", "application/apply-patch+yaml")
SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "60a317eadfcb839692a5551a9b2e6d4c2bb6e4d4",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T13:07:52Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class Call:
    """One object request as RBAC sees it (``resource`` includes a subresource: ``x/status``)."""

    verb: str
    group: str
    resource: str
    namespace: str
    agent: str


@dataclass
class Reply:
    """What ``_serve`` answers: a status code, a body and any ``Warning`` headers."""

    code: int
    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _warning(text: str) -> str:
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _field_selected(obj: dict[str, Any], selector: str) -> bool:
    """Field selectors on ``metadata.name`` and ``metadata.namespace`` (what kubectl wait sends)."""
    meta = obj.get("metadata") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        actual = meta.get(key.strip().removeprefix("metadata."), "")
        if (actual == value.strip()) == negate:
            return False
    return True


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    store: dict[tuple[str, str, str, str], dict[str, Any]] = attrs.field(factory=dict, init=False)
    # Change history per (group, plural): parallel lists of revisions and (namespace, event).
    history: dict[tuple[str, str], tuple[list[int], list[tuple[str, dict]]]] = attrs.field(
        factory=dict, init=False
    )
    crds: dict[tuple[str, str], dict[str, Any]] = attrs.field(factory=dict, init=False)
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

    def register_crd(self, crd: dict[str, Any]) -> None:
        """Serve a CRD's kind as the API server does once the CRD is established."""
        spec, names = crd["spec"], crd["spec"]["names"]
        self.crds[(spec["group"], names["plural"])] = copy.deepcopy(crd)
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            self.declare(
                spec["group"],
                version["name"],
                names["plural"],
                names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                subresources=set(version.get("subresources") or {}),
                shortnames=set(names.get("shortNames") or []),
                categories=set(names.get("categories") or []),
            )

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

    def _version_of(self, group: str, plural: str, version: str) -> dict[str, Any] | None:
        crd = self.crds.get((group, plural))
        if crd is None:
            return None
        return next((v for v in crd["spec"]["versions"] if v["name"] == version), None)

    async def _serve_version(self, request: Any) -> Any:
        """kmock's APIResourceList, with subresources bare as the API server lists them.

        kmock copies short names to ``x/status`` too, so kubectl warns on every ``get md``
        that "md" could also match the status subresource.
        """
        listing = await super()._serve_version(request)
        for entry in listing["resources"]:
            if "/" in entry["name"]:
                entry.update(shortNames=[], categories=[], singularName="")
        return listing

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        parts = raw.path.strip("/").split("/")
        if parts == ["version"]:
            return self._json(SERVER_VERSION)
        if parts[0] == "openapi":
            return self._openapi(parts[1:], raw)
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:  # kmock cannot parse it
            return await self._namespaces(parts, raw)
        return await super().__call__(raw)

    def _openapi(self, parts: list[str], raw: aiohttp.web.BaseRequest) -> aiohttp.web.Response:
        crds = list(self.crds.values())
        if parts == ["v3"]:
            return self._json(kube_openapi.v3_index(crds))
        if parts[:1] == ["v3"]:
            pairs = kube_openapi.group_versions(crds).get("/".join(parts[1:]))
            if pairs:
                return self._json(kube_openapi.v3_document(pairs))
        if parts == ["v2"]:
            accept = raw.headers.get("Accept", "*/*")
            if "json" in accept or "*/*" in accept:
                return self._json(kube_openapi.v2_document(crds))
            return self._json(self._status(406, "NotAcceptable", "only JSON is served"), 406)
        return self._json(
            self._status(404, "NotFound", "the server could not find the requested resource"), 404
        )

    async def _namespaces(self, parts: list[str], raw: aiohttp.web.BaseRequest) -> Any:
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
            api_version = f"{res.group}/{res.version}" if res.group else res.version
            return await self._watch(request, raw, key, info.kind, api_version)
        async with self.changed:
            reply = self._serve(verb, key, request, info, res.version)
            if reply.code < 300:
                self.changed.notify_all()
                if res.plural == "customresourcedefinitions" and verb != "delete":
                    self.register_crd(reply.body)
        accept = raw.headers.get("Accept", "")
        if reply.code == 200 and verb in ("get", "list") and kube_tables.is_table_request(accept):
            reply.body = self._table(key, res.version, reply.body)
        # One RFC 7234 Warning header per warning, text quoted: kubectl prints each one.
        headers = CIMultiDict(("Warning", _warning(w)) for w in reply.warnings)
        return self._json(reply.body, reply.code, headers)

    def _table(self, key: tuple[str, str, str], version: str, body: dict[str, Any]) -> dict:
        served = self._version_of(key[0], key[1], version) or {}
        objects = body.get("items", [body])
        rv = body["metadata"].get("resourceVersion", str(self.revision))
        return kube_tables.table(objects, served.get("additionalPrinterColumns"), rv)

    def _serve(
        self, verb: str, key: tuple[str, str, str], request: Any, info: Any, version: str
    ) -> Reply:
        group, plural, _ = key
        if verb == "list":
            selector = request.params.get("labelSelector", "")
            fields = request.params.get("fieldSelector", "")
            items = [
                o
                for o in self.objects_of(group, plural, request.namespace)
                if _selected(o, selector) and _field_selected(o, fields)
            ]
            meta = {"resourceVersion": str(self.revision)}
            kind = f"{info.kind}List"
            return Reply(200, {"apiVersion": "v1", "kind": kind, "metadata": meta, "items": items})
        mode = request.params.get("fieldValidation") or "Warn"
        if mode not in FIELD_VALIDATION:
            message = f"fieldValidation must be one of {', '.join(FIELD_VALIDATION)}: {mode!r}"
            return Reply(400, self._status(400, "BadRequest", message))
        if verb == "create":
            return self._create(key, request, info, version, mode)
        current = self.store.get((*key, request.name or ""))
        on_status = request.subresource == "status"
        if current is None or (on_status and verb not in ("get", "patch", "update")):
            what = f"{plural}.{group}" if group else plural
            return Reply(404, self._status(404, "NotFound", f'{what} "{request.name}" not found'))
        if verb == "get":
            return Reply(200, copy.deepcopy(current))
        if verb == "delete":
            if current["metadata"].get("finalizers") or []:
                if current["metadata"].get("deletionTimestamp"):
                    return Reply(200, copy.deepcopy(current))
                new = merge_patch(current, {"metadata": {"deletionTimestamp": _now()}})
                return Reply(200, self._save((*key, request.name), new, current))
            return Reply(200, self._save((*key, request.name), current, current, gone=True))
        return self._write(verb, key, request, info, version, mode, current)

    def _create(
        self, key: tuple[str, str, str], request: Any, info: Any, version: str, mode: str
    ) -> Reply:
        data = copy.deepcopy(request.data) if isinstance(request.data, dict) else None
        if data is None:
            return Reply(400, self._status(400, "BadRequest", "a JSON object is required"))
        meta = data.setdefault("metadata", {})
        if meta.get("generateName") and not meta.get("name"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta.setdefault(
            "name", "" if self._version_of(key[0], key[1], version) else uuid.uuid4().hex[:5]
        )
        meta["namespace"] = key[2] or meta.get("namespace", "")
        if "status" in info.subresources:
            data.pop("status", None)
        refused, warnings = self._admit(key, version, data, mode, creating=True)
        if refused is not None:
            return refused
        if (*key, meta["name"]) in self.store:
            what = f"{key[1]}.{key[0]}" if key[0] else key[1]
            return Reply(
                409, self._status(409, "AlreadyExists", f'{what} "{meta["name"]}" already exists')
            )
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        meta.pop("resourceVersion", None)
        return Reply(201, self._save((*key, meta["name"]), data, None), warnings)

    def _write(
        self,
        verb: str,
        key: tuple[str, str, str],
        request: Any,
        info: Any,
        version: str,
        mode: str,
        current: dict[str, Any],
    ) -> Reply:
        ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        data: Any = request.data
        custom = self._version_of(key[0], key[1], version) is not None
        if verb == "patch" and ctype in UNSUPPORTED_PATCHES and (custom or "apply" in ctype):
            accepted = "application/json-patch+json, application/merge-patch+json"
            msg = (
                "the body of the request was in an unknown format - accepted media types"
                f" include: {accepted} ({ctype})"
            )
            return Reply(415, self._status(415, "UnsupportedMediaType", msg))
        if verb == "patch" and isinstance(data, list):  # a JSON patch: applied, never merged
            try:
                new = json_patch(current, data)
            except PatchError as exc:
                return Reply(422, self._status(422, "Invalid", str(exc)))
        elif isinstance(data, dict):
            wanted = str((data.get("metadata") or {}).get("resourceVersion") or "")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                msg = (
                    "the object has been modified; please apply your changes to the latest"
                    " version and try again"
                )
                return Reply(409, self._status(409, "Conflict", msg))
            new = merge_patch(current, data) if verb == "patch" else copy.deepcopy(data)
        else:
            return Reply(400, self._status(400, "BadRequest", "a JSON object is required"))
        if request.subresource == "status":  # the status subresource changes the status only
            new = {**copy.deepcopy(current), "status": new.get("status")}
        elif "status" in info.subresources:  # the main resource never changes the status
            new["status"] = copy.deepcopy(current.get("status"))
        for kept in (
            "uid",
            "creationTimestamp",
            "generation",
            "namespace",
            "name",
            "resourceVersion",
        ):
            new.setdefault("metadata", {})[kept] = current["metadata"].get(kept)
        if current["metadata"].get("deletionTimestamp"):
            new["metadata"]["deletionTimestamp"] = current["metadata"]["deletionTimestamp"]
        if new.get("status") is None:
            new.pop("status", None)
        refused, warnings = self._admit(key, version, new, mode, creating=False)
        if refused is not None:
            return refused
        if new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = int(current["metadata"].get("generation") or 0) + 1
        gone = new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers")
        return Reply(200, self._save((*key, request.name), new, current, gone=bool(gone)), warnings)

    def _admit(
        self,
        key: tuple[str, str, str],
        version: str,
        obj: dict[str, Any],
        mode: str,
        *,
        creating: bool,
    ) -> tuple[Reply | None, list[str]]:
        """Prune, default and validate ``obj`` in place: (a refusal or None, warnings)."""
        served = self._version_of(key[0], key[1], version)
        if served is None:
            return None, []
        crd = self.crds[key[:2]]
        kind, group = crd["spec"]["names"]["kind"], crd["spec"]["group"]
        schema = (served.get("schema") or {}).get("openAPIV3Schema") or {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        dropped = prune(schema, obj)
        unknown = [f'unknown field "{path}"' for path in dropped]
        if unknown and mode == "Strict":
            message = (
                f'{kind} in version "{version}" cannot be handled as a {kind}:'
                f" strict decoding error: {', '.join(unknown)}"
            )
            return Reply(400, self._status(400, "BadRequest", message)), []
        default(schema, obj)
        causes = (validate_name(obj["metadata"]) if creating else []) + validate(schema, obj)
        if causes:
            name = obj["metadata"].get("name", "")
            return Reply(422, invalid_status(kind, group, name, causes)), []
        return None, unknown if mode == "Warn" else []

    def _save(
        self, full_key: tuple, new: dict, old: dict | None, *, gone: bool = False
    ) -> dict[str, Any]:
        """Store ``new`` (or delete the object, ``gone``, in its ``new`` state) as a revision."""
        self.revision += 1
        revisions, events = self.history.setdefault(full_key[:2], ([], []))
        if gone:
            kept = copy.deepcopy(new)
            kept["metadata"]["resourceVersion"] = str(self.revision)
            del self.store[full_key]
            revisions.append(self.revision)
            events.append((full_key[2], {"type": "DELETED", "object": kept}))
            return kept
        new["metadata"]["resourceVersion"] = str(self.revision)
        self.store[full_key] = copy.deepcopy(new)
        kind = "ADDED" if old is None else "MODIFIED"
        revisions.append(self.revision)
        events.append((full_key[2], {"type": kind, "object": copy.deepcopy(new)}))
        return new

    async def _watch(
        self, request: Any, raw: aiohttp.web.BaseRequest, key: tuple, kind: str, api_version: str
    ) -> Any:
        group, plural, ns = key
        selector = request.params.get("labelSelector", "")
        fields = request.params.get("fieldSelector", "")
        since = int(request.params.get("resourceVersion") or 0)
        initial = request.params.get("sendInitialEvents") == "true"
        timeout = float(request.params.get("timeoutSeconds") or 3600)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        assert self.changed is not None

        def wanted(obj: dict[str, Any]) -> bool:
            return _selected(obj, selector) and _field_selected(obj, fields)

        if not since or initial:  # the current state as ADDED, then the changes
            since = self.revision
            for obj in self.objects_of(group, plural, request.namespace):
                if wanted(obj):
                    await response.write(
                        json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"
                    )
            if initial:  # the streaming list's end marker (client-go's WatchList)
                mark = {
                    "resourceVersion": str(since),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }
                marker = {"kind": kind, "apiVersion": api_version, "metadata": mark}
                event = {"type": "BOOKMARK", "object": marker}
                await response.write(json.dumps(event).encode() + b"\n")
        while loop.time() < deadline and not raw.transport.is_closing():  # type: ignore[union-attr]
            async with self.changed:
                batch = self._since(since, group, plural, ns)
                if not batch:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
                    batch = self._since(since, group, plural, ns)
            for rv, event in batch:
                since = rv
                if wanted(event["object"]):
                    await response.write(json.dumps(event).encode() + b"\n")
        await response.write_eof()
        return response

    def _since(self, since: int, group: str, plural: str, ns: str) -> list[tuple[int, dict]]:
        """The changes to one resource type after ``since``: a bisect, not a scan of all history."""
        revisions, events = self.history.get((group, plural), ([], []))
        start = bisect.bisect_right(revisions, since)
        return [
            (revisions[i], events[i][1])
            for i in range(start, len(revisions))
            if not ns or events[i][0] == ns
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
    def _json(
        body: dict[str, Any], code: int = 200, headers: CIMultiDict | None = None
    ) -> aiohttp.web.Response:
        return aiohttp.web.json_response(body, status=code, headers=headers)


def modeldeployment_crd() -> dict[str, Any]:
    """The project's CRD, built at run time: the schema is generated and changes with the code."""
    from modeldeploy.operator.api.crd import build_crd

    return build_crd()


def for_modeldeploy(*crds: dict[str, Any]) -> KubeEmulator:
    """An emulator for what the operator touches: ModelDeployments (validated against the
    project's CRD), InferenceServices, Events and namespaces. Extra ``crds`` (KServe's, say)
    replace a plain declaration with a validated one."""
    emulator = KubeEmulator()
    emulator.register_crd(modeldeployment_crd())
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
    for crd in crds:
        emulator.register_crd(crd)
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
