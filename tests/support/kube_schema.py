"""What the API server does to a custom resource write with a structural schema, in its order.

1. Prune: drop fields the schema does not declare (unless ``x-kubernetes-preserve-unknown-
   fields``) and ``null`` values of non-nullable fields. The dropped paths are what
   ``fieldValidation=Strict`` refuses and ``Warn`` reports.
2. Default: fill ``default`` values for absent fields of objects that are present.
3. Validate: types, enums, bounds, lengths, patterns, item counts and ``required``.
   Each failure is a ``Cause`` worded as apiextensions-apiserver words it (kube-openapi's
   messages wrapped in apimachinery's ``field.Error``), so kubectl prints what a real
   cluster prints, e.g. ``spec.rollout.steps[0]: Invalid value: 150: spec.rollout.steps[0]
   in body should be less than or equal to 100``.

``metadata`` is never touched by the schema (the API server treats it as ObjectMeta);
``validate_name`` checks ``metadata.name`` as it does for custom resources.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

SKIPPED_AT_ROOT = ("apiVersion", "kind", "metadata")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex"
    " used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


@dataclass(frozen=True)
class Cause:
    """One ``details.causes[]`` entry of a 422 Status (``reason`` is the field.ErrorType)."""

    reason: str
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def go_value(value: Any) -> str:
    """A value as Go's field.Error prints it: strings quoted, numbers and booleans bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return '"null"'
    return json.dumps(value, sort_keys=True)  # Go prints %#v here; JSON reads better


def json_type(value: Any) -> str:
    """The OpenAPI type name of a decoded JSON value (kube-openapi's wording)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_ok(wanted: str, value: Any) -> bool:
    got = json_type(value)
    if wanted == "number":
        return got in ("integer", "number")
    if wanted == "integer":
        return got == "integer" or (got == "number" and float(value).is_integer())
    return got == wanted


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _preserves(schema: dict[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def prune(schema: dict[str, Any], obj: Any, path: str = "", *, root: bool = True) -> list[str]:
    """Drop undeclared fields and non-nullable nulls in place; returns the dropped paths
    (sorted at the top, as the API server lists them)."""
    dropped: list[str] = []
    if isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(obj):
                dropped += prune(items, item, f"{path}[{i}]", root=False)
        return dropped
    if not isinstance(obj, dict):
        return dropped
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key in list(obj):
        if root and key in SKIPPED_AT_ROOT:
            continue
        sub = props.get(key, extra if isinstance(extra, dict) else None)
        if sub is None:
            if not _preserves(schema):
                del obj[key]
                dropped.append(_child(path, key))
            continue
        if obj[key] is None and not sub.get("nullable"):
            del obj[key]  # pruned before defaulting, so a default can take its place
            continue
        dropped += prune(sub, obj[key], _child(path, key), root=False)
    return sorted(dropped) if root else dropped


def default(schema: dict[str, Any], obj: Any, *, root: bool = True) -> None:
    """Fill ``default`` values in place for absent fields of the objects present."""
    if isinstance(obj, list):
        if isinstance(schema.get("items"), dict):
            for item in obj:
                default(schema["items"], item, root=False)
        return
    if not isinstance(obj, dict):
        return
    props: dict[str, Any] = schema.get("properties") or {}
    for key, sub in props.items():
        if root and key == "metadata":
            continue
        if key not in obj and "default" in sub:
            obj[key] = copy.deepcopy(sub["default"])
        if key in obj:
            default(sub, obj[key], root=False)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in obj.items():
            if key not in props:
                default(extra, value, root=False)


def validate(
    schema: dict[str, Any], value: Any, path: str = "", *, root: bool = True
) -> list[Cause]:
    """The schema violations of ``value``, worded as the API server words them."""
    if value is None and schema.get("nullable"):
        return []
    wanted = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if json_type(value) not in ("integer", "string"):
            return [_type_error(path, "integer,string", value)]
    elif wanted and not _type_ok(wanted, value):
        return [_type_error(path, wanted, value)]
    causes = _scalar_rules(schema, value, path)
    if isinstance(value, list):
        causes += _array_rules(schema, value, path)
    elif isinstance(value, dict):
        causes += _object_rules(schema, value, path, root)
    return causes


def _type_error(path: str, wanted: str, value: Any) -> Cause:
    got = json_type(value)
    detail = f'{path} in body must be of type {wanted}: "{got}"'
    return Cause("FieldValueTypeInvalid", path, f'Invalid value: "{got}": {detail}')


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", path, f"Invalid value: {go_value(value)}: {detail}")


def _bound(value: float) -> str:
    return go_value(float(value))


def _scalar_rules(schema: dict[str, Any], value: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(
            json.dumps(v if isinstance(v, str) else json.dumps(v)) for v in schema["enum"]
        )
        causes.append(
            Cause(
                "FieldValueNotSupported",
                path,
                f"Unsupported value: {go_value(value)}: supported values: {allowed}",
            )
        )
    if json_type(value) in ("integer", "number"):
        top, low = schema.get("maximum"), schema.get("minimum")
        if top is not None:
            if schema.get("exclusiveMaximum") and value >= top:
                causes.append(
                    _invalid(path, value, f"{path} in body should be less than {_bound(top)}")
                )
            elif value > top:
                causes.append(
                    _invalid(
                        path, value, f"{path} in body should be less than or equal to {_bound(top)}"
                    )
                )
        if low is not None:
            if schema.get("exclusiveMinimum") and value <= low:
                causes.append(
                    _invalid(path, value, f"{path} in body should be greater than {_bound(low)}")
                )
            elif value < low:
                detail = f"{path} in body should be greater than or equal to {_bound(low)}"
                causes.append(_invalid(path, value, detail))
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            message = f"Too long: may not be longer than {schema['maxLength']}"
            causes.append(Cause("FieldValueTooLong", path, message))
        if "minLength" in schema and len(value) < schema["minLength"]:
            detail = f"{path} in body should be at least {schema['minLength']} chars long"
            causes.append(_invalid(path, value, detail))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append(
                _invalid(path, value, f"{path} in body should match '{schema['pattern']}'")
            )
    return causes


def _array_rules(schema: dict[str, Any], value: list, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        message = f"Too many: {len(value)}: must have at most {schema['maxItems']} items"
        causes.append(Cause("FieldValueTooMany", path, message))
    if "minItems" in schema and len(value) < schema["minItems"]:
        detail = f"{path} in body should have at least {schema['minItems']} items"
        causes.append(_invalid(path, len(value), detail))
    if isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            causes += validate(schema["items"], item, f"{path}[{i}]", root=False)
    return causes


def _object_rules(schema: dict[str, Any], value: dict, path: str, root: bool) -> list[Cause]:
    causes = [
        Cause("FieldValueRequired", _child(path, key), "Required value")
        for key in schema.get("required") or []
        if key not in value
    ]
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if root and key in SKIPPED_AT_ROOT:
            continue
        sub = props.get(key, extra if isinstance(extra, dict) else None)
        if sub is not None:
            causes += validate(sub, item, _child(path, key), root=False)
    return causes


def validate_name(metadata: dict[str, Any]) -> list[Cause]:
    """``metadata.name`` of a custom resource: required (or generateName), a DNS-1123 subdomain."""
    name = metadata.get("name")
    if not name:
        return [
            Cause(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
        ]
    causes = []
    if len(name) > 253:
        causes.append(_invalid("metadata.name", name, "must be no more than 253 characters"))
    if not DNS1123_SUBDOMAIN.match(name):
        causes.append(_invalid("metadata.name", name, DNS1123_MESSAGE))
    return causes


def invalid_status(kind: str, group: str, name: str, causes: list[Cause]) -> dict[str, Any]:
    """The 422 ``Status`` the API server answers (apimachinery's ``errors.NewInvalid``)."""
    qualified = f"{kind}.{group}" if group else kind
    joined = str(causes[0]) if len(causes) == 1 else "[" + ", ".join(map(str, causes)) + "]"
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'{qualified} "{name}" is invalid: {joined}',
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [c.as_dict() for c in causes],
        },
        "code": 422,
    }
