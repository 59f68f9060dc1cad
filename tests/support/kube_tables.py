"""Server-side printing: the ``Table`` (meta.k8s.io/v1) that ``kubectl get`` asks for.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
columns the server chose. For a custom resource those are Name plus the CRD's
``additionalPrinterColumns`` (the API server defaults them to Age when a CRD has none);
each cell comes from the column's JSONPath, and ``date`` cells are shown as an age
("5m"), worded as apimachinery's ``duration.HumanDuration``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace. More info:"
    " https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    "priority": 0,
}
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\['([^']+)'\]")


def is_table_request(accept: str) -> bool:
    """Whether the client asked for a Table first (kubectl lists JSON as the fallback after it)."""
    first = accept.split(",")[0].replace(" ", "")
    return "as=Table" in first and "g=meta.k8s.io" in first


def jsonpath(obj: Any, path: str) -> tuple[bool, Any]:
    """Evaluate a simple JSONPath (``.a.b``, ``.a[0]``, ``.a['b.c']``); (found, value)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    path = path.removeprefix("$")
    node, pos = obj, 0
    while pos < len(path):
        step = _STEP.match(path, pos)
        if step is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {pos}")
        key, index, quoted = step.groups()
        pos = step.end()
        if index is not None:
            if not isinstance(node, list) or int(index) >= len(node):
                return False, None
            node = node[int(index)]
        elif isinstance(node, dict) and (key or quoted) in node:
            node = node[key or quoted]
        else:
            return False, None
    return True, node


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration``: the Age column kubectl shows."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _cell(column: dict[str, Any], obj: dict[str, Any], now: datetime) -> Any:
    found, value = jsonpath(obj, column["jsonPath"])
    if not found or value is None:
        return None
    kind = column.get("type", "string")
    if kind == "date":
        try:
            stamp = datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "<invalid>"
        return human_duration((now - stamp).total_seconds())
    if kind == "string":
        return value if isinstance(value, str) else str(value)
    return value


def columns_of(printer_columns: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Name, then the CRD's columns (Age alone when it declares none), as JSONPath columns."""
    return [dict(c) for c in (printer_columns or [AGE_COLUMN])]


def table(
    objects: list[dict[str, Any]],
    printer_columns: list[dict[str, Any]] | None,
    resource_version: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Table of ``objects``; each row carries the object's metadata, as by default."""
    now = now or datetime.now(UTC)
    columns = columns_of(printer_columns)
    definitions = [NAME_COLUMN] + [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description")
            or f"Custom resource definition column (in JSONPath format): {c['jsonPath']}",
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    rows = [
        {
            "cells": [obj["metadata"].get("name")] + [_cell(c, obj, now) for c in columns],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }
        for obj in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
