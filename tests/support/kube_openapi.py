"""OpenAPI documents built from the registered CRDs, shaped as the API server publishes them.

kubectl 1.35 reads ``/openapi/v3`` (an index of group-versions) and then
``/openapi/v3/apis/<group>/<version>``:

* ``kubectl apply`` looks for the ``fieldValidation`` query parameter on the PATCH
  operation whose ``x-kubernetes-group-version-kind`` names the kind; when it is there,
  kubectl leaves validation to the server (``?fieldValidation=Strict``); and it picks
  JSON merge patch over strategic merge patch because the PATCH request body does not
  list ``application/strategic-merge-patch+json`` (custom resources cannot take it).
* ``kubectl explain`` finds the schema in ``components.schemas`` by the same extension
  and prints the descriptions.

``/openapi/v2`` is served as JSON for clients that accept JSON (kubectl itself asks for
protobuf there, and only when v3 is missing).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should"
    " convert recognized schemas to the latest internal value, and may reject unrecognized values."
    " More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers may"
    " infer this from the endpoint the client submits requests to. Cannot be updated. In"
    " CamelCase. More info:"
    " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
METADATA_DOC = (
    "Standard object's metadata. More info:"
    " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)
QUERY = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "A name associated with the actor or entity that is making these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the"
    " request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are:"
    " Ignore, Warn"
    " (the default) and Strict.",
}
OBJECT_META = {
    "description": "ObjectMeta is metadata that all persisted resources must have, which includes"
    " all objects users must create.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {
            "type": "string",
            "description": "A prefix the server uses to generate a unique name.",
        },
        "namespace": {"type": "string", "description": "The namespace the object lives in."},
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Labels.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Annotations.",
        },
        "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Finalizers."},
        "uid": {
            "type": "string",
            "description": "UID is the unique in time and space value for this object.",
        },
        "resourceVersion": {"type": "string", "description": "An opaque version of this object."},
        "generation": {
            "type": "integer",
            "format": "int64",
            "description": "The spec's generation.",
        },
        "creationTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "When it was created.",
        },
        "deletionTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "When it is deleted.",
        },
    },
}
LIST_META = {
    "description": "ListMeta describes metadata that synthetic resources must have.",
    "type": "object",
    "properties": {"resourceVersion": {"type": "string", "description": "The list's version."}},
}


def schema_name(group: str, version: str, kind: str) -> str:
    """The component name the API server gives a kind: the group's labels reversed."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _kind_schema(crd_version: dict[str, Any], gvk: dict[str, str], ref: str) -> dict[str, Any]:
    schema = copy.deepcopy(crd_version["schema"]["openAPIV3Schema"])
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": KIND_DOC}
    props["metadata"] = {
        "description": METADATA_DOC,
        "allOf": [{"$ref": f"{ref}{META}.ObjectMeta"}],
    }
    schema["x-kubernetes-group-version-kind"] = [gvk]
    return schema


def _list_schema(item_ref: str, gvk: dict[str, str], ref: str) -> dict[str, Any]:
    return {
        "description": f"{gvk['kind']}List is a list of {gvk['kind']}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DOC},
            "items": {"type": "array", "items": {"$ref": item_ref}},
            "kind": {"type": "string", "description": KIND_DOC},
            "metadata": {"allOf": [{"$ref": f"{ref}{META}.ListMeta"}]},
        },
        "x-kubernetes-group-version-kind": [{**gvk, "kind": f"{gvk['kind']}List"}],
    }


def _operation(action: str, gvk: dict[str, str], body_ref: str, v3: bool) -> dict[str, Any]:
    params = [{"name": n, "in": "query", "description": d} for n, d in QUERY.items()]
    if v3:
        for p in params:
            p["schema"] = {"type": "string", "uniqueItems": True}
    else:
        for p in params:
            p.update(type="string", uniqueItems=True)
    op: dict[str, Any] = {
        "operationId": f"{action}{gvk['kind']}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": params if action in ("post", "put", "patch") else [],
    }
    ok = {"description": "OK"}
    if v3:
        ok["content"] = {"application/json": {"schema": {"$ref": body_ref}}}
        if action == "patch":
            op["requestBody"] = {
                "content": {
                    t: {"schema": {"$ref": f"#/components/schemas/{META}.Patch"}}
                    for t in PATCH_TYPES
                },
                "required": True,
            }
        elif action in ("post", "put"):
            op["requestBody"] = {
                "content": {"*/*": {"schema": {"$ref": body_ref}}},
                "required": True,
            }
    else:
        ok["schema"] = {"$ref": body_ref}
        if action == "patch":
            op["consumes"] = list(PATCH_TYPES)
    op["responses"] = {"200": ok}
    return op


def _paths(crd: dict[str, Any], version: str, ref: str, v3: bool) -> dict[str, Any]:
    spec = crd["spec"]
    group, plural = spec["group"], spec["names"]["plural"]
    gvk = {"group": group, "version": version, "kind": spec["names"]["kind"]}
    item = f"{ref}{schema_name(group, version, gvk['kind'])}"
    listed = f"{item}List"
    base = f"/apis/{group}/{version}"
    scoped = (
        f"{base}/namespaces/{{namespace}}/{plural}"
        if spec["scope"] == "Namespaced"
        else f"{base}/{plural}"
    )
    paths = {
        scoped: {
            a: _operation(a, gvk, listed if a == "get" else item, v3) for a in ("get", "post")
        },
        f"{scoped}/{{name}}": {
            a: _operation(a, gvk, item, v3) for a in ("get", "put", "patch", "delete")
        },
    }
    if spec["scope"] == "Namespaced":
        paths[f"{base}/{plural}"] = {"get": _operation("list", gvk, listed, v3)}
    served = next(v for v in spec["versions"] if v["name"] == version)
    if "status" in (served.get("subresources") or {}):
        paths[f"{scoped}/{{name}}/status"] = {
            a: _operation(a, gvk, item, v3) for a in ("get", "put", "patch")
        }
    return paths


def _schemas(crds: list[dict[str, Any]], version_of: dict[str, str], ref: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {f"{META}.ObjectMeta": OBJECT_META, f"{META}.ListMeta": LIST_META}
    schemas[f"{META}.Patch"] = {
        "description": "Patch is provided to give a concrete name and type to the patch body.",
        "type": "object",
    }
    for crd in crds:
        spec = crd["spec"]
        served = next(
            v for v in spec["versions"] if v["name"] == version_of[crd["metadata"]["name"]]
        )
        gvk = {"group": spec["group"], "version": served["name"], "kind": spec["names"]["kind"]}
        name = schema_name(gvk["group"], gvk["version"], gvk["kind"])
        schemas[name] = _kind_schema(served, gvk, ref)
        schemas[f"{name}List"] = _list_schema(f"{ref}{name}", gvk, ref)
    return schemas


def group_versions(crds: list[dict[str, Any]]) -> dict[str, list[tuple[dict[str, Any], str]]]:
    """``apis/<group>/<version>`` -> the (CRD, version) pairs served there."""
    out: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for crd in crds:
        for v in crd["spec"]["versions"]:
            if v.get("served", True):
                out.setdefault(f"apis/{crd['spec']['group']}/{v['name']}", []).append(
                    (crd, v["name"])
                )
    return out


def v3_document(pairs: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    """The OpenAPI v3 document of one group-version."""
    ref = "#/components/schemas/"
    paths: dict[str, Any] = {}
    for crd, version in pairs:
        paths.update(_paths(crd, version, ref, v3=True))
    version_of = {crd["metadata"]["name"]: version for crd, version in pairs}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": _schemas([c for c, _ in pairs], version_of, ref)},
    }


def v3_index(crds: list[dict[str, Any]]) -> dict[str, Any]:
    """``/openapi/v3``: each group-version with a URL whose hash changes with its content."""
    paths = {}
    for key, pairs in sorted(group_versions(crds).items()):
        digest = hashlib.sha512(json.dumps(v3_document(pairs), sort_keys=True).encode()).hexdigest()
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest[:128].upper()}"}
    return {"paths": paths}


def v2_document(crds: list[dict[str, Any]]) -> dict[str, Any]:
    """``/openapi/v2`` (Swagger 2.0) with every served version of every CRD."""
    ref = "#/definitions/"
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for pairs in group_versions(crds).values():
        for crd, version in pairs:
            paths.update(_paths(crd, version, ref, v3=False))
            definitions.update(_schemas([crd], {crd["metadata"]["name"]: version}, ref))
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "definitions": definitions,
    }
