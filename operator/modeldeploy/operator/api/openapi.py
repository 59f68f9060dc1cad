"""Turn a CRD's openAPIV3Schema into a plain JSON Schema that ``jsonschema`` checks.

Kubernetes extends OpenAPI with ``x-kubernetes-*`` keys that JSON Schema does not know:
``int-or-string`` (a field that is an integer or a string, such as a quantity) and
``preserve-unknown-fields``. OpenAPI v3.0 also writes an exclusive bound as
``minimum: x, exclusiveMinimum: true`` where JSON Schema draft 7 writes
``exclusiveMinimum: x``. The API server honours all of these; this does the same, so tests
validate our manifests and KServe's exactly as a cluster would. A resource's ``metadata``
stays open: the API server checks it itself, and a CRD may only restrict its name.
"""

from __future__ import annotations

from typing import Any


def to_jsonschema(node: Any) -> Any:
    """A copy of ``node`` with the Kubernetes extensions expressed in JSON Schema."""
    return _convert(node, root=True)


def _convert(node: Any, root: bool = False) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _convert(v)
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k not in ("nullable", "properties")
    }
    if "properties" in node:
        props = node["properties"]
        out["properties"] = {k: _convert(v) for k, v in props.items()}
        if root and isinstance(props.get("metadata"), dict):
            out["properties"]["metadata"] = {
                k: _convert(v) for k, v in props["metadata"].items() if k != "nullable"
            }
            out["properties"]["metadata"]["additionalProperties"] = True
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(key) is True:
            out[key] = out.pop(bound)
        elif out.get(key) is False:
            del out[key]
    if (
        out.get("type") == "object"
        and "properties" in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out.setdefault("additionalProperties", False)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out
