"""Pydantic's JSON Schema to a Kubernetes structural schema (a CRD's openAPIV3Schema).

The API server accepts only a subset of JSON Schema: every node has a ``type``, no
``$ref``, no ``anyOf`` for "this or null", ``additionalProperties`` never next to
``properties``, OpenAPI v3.0's boolean ``exclusiveMinimum``/``exclusiveMaximum`` and no
``uniqueItems``. This turns what pydantic emits into that subset and refuses anything it
does not know how to express, so a model change that the CRD cannot carry fails the tests
instead of producing a schema the API server rejects.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

# Keys copied as they are (after their values are converted), in the order they are written.
_ORDER = (
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "items",
    "additionalProperties",
    "properties",
    "required",
)
_KEPT = set(_ORDER)
_DROPPED = {"title"}


class UnsupportedSchema(ValueError):
    """The model uses a JSON Schema feature a structural schema cannot express."""


def structural_schema(model: type[BaseModel]) -> Schema:
    """The structural openAPIV3Schema of ``model`` (its camelCase aliases as keys)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return convert(schema, schema.get("$defs", {}), "")


def convert(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """One node of pydantic's schema, converted; ``path`` names it in errors."""
    node = _inline_ref(node, defs, path)
    node = _collapse_optional(node, path)
    out: Schema = {}
    for key, value in node.items():
        if key == "$defs" or key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {k: convert(v, defs, f"{path}.{k}") for k, v in value.items()}
        elif key == "items":
            out[key] = convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            _additional(out, node, value, defs, path)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound], out[key] = value, True
        elif key in _KEPT or key.startswith("x-kubernetes-"):
            out[key] = value
        else:
            raise UnsupportedSchema(f"{path or '.'}: {key!r} has no structural-schema form")
    if out.get("default", 0) is None:
        del out["default"]  # "unset" is expressed by leaving the field out
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise UnsupportedSchema(f"{path or '.'}: every node needs a type")
    rank = {key: i for i, key in enumerate(_ORDER)}
    return dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def _inline_ref(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """Replace ``$ref`` by the definition; the field's own keys (description) win."""
    if "$ref" not in node:
        return node
    name = node["$ref"].rsplit("/", 1)[-1]
    if name not in defs:
        raise UnsupportedSchema(f"{path or '.'}: unresolved reference {node['$ref']}")
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return _inline_ref({**defs[name], **siblings}, defs, path)


def _collapse_optional(node: Schema, path: str) -> Schema:
    """``anyOf: [X, {type: null}]`` (pydantic's ``X | None``) becomes X.

    Not ``nullable``: the API server prunes an explicit null of a non-nullable field, so
    ``key: null`` and leaving the key out both reach the operator as "unset".
    """
    if "anyOf" not in node:
        return node
    options = [o for o in node["anyOf"] if o != {"type": "null"}]
    if len(options) != 1 or len(node["anyOf"]) != 2:
        raise UnsupportedSchema(f"{path or '.'}: only 'X or null' unions are supported")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**options[0], **rest}


def _additional(out: Schema, node: Schema, value: Any, defs: dict[str, Schema], path: str) -> None:
    """A map's value schema is kept; ``false`` next to ``properties`` is implied by pruning."""
    if isinstance(value, dict):
        if "properties" in node:
            raise UnsupportedSchema(f"{path or '.'}: properties and additionalProperties together")
        out["additionalProperties"] = convert(value, defs, f"{path}.*")
    elif value is not False:
        raise UnsupportedSchema(f"{path or '.'}: additionalProperties: {value!r}")
