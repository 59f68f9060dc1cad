"""Turn a CRD's openAPIV3Schema into a plain JSON Schema that ``jsonschema`` checks.

Kubernetes extends OpenAPI with ``x-kubernetes-*`` keys that JSON Schema does not know:
``int-or-string`` (a field that is an integer or a string, such as a quantity) and
``preserve-unknown-fields``. The API server honours them; this does the same, so tests
validate our manifests and KServe's exactly as a cluster would.
"""

from __future__ import annotations

from typing import Any


def to_jsonschema(node: Any) -> Any:
    """A copy of ``node`` with the Kubernetes extensions expressed in JSON Schema."""
    if isinstance(node, list):
        return [to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: to_jsonschema(v)
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k != "nullable"
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        out.get("type") == "object"
        and "properties" in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out.setdefault("additionalProperties", False)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out
