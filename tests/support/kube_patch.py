"""The two patch formats kopf and kubectl send to custom resources, applied as the API server does.

JSON merge patch (RFC 7386) merges objects and replaces everything else; ``null`` deletes.
JSON patch (RFC 6902) is a list of operations on JSON pointers and must be *applied*:
merging its result into the stored object instead (as an earlier emulator did) brings
removed keys back, so a finalizer kopf removes never goes and kopf re-patches forever.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A JSON patch that cannot be applied; the API server answers 422 with this message."""


def merge_patch(old: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(old) if isinstance(old, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}: it must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(node: list, token: str, *, adding: bool) -> int:
    if adding and token == "-":
        return len(node)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(node) or (index == len(node) and not adding):
        raise PatchError(f"array index {index} is out of bounds (length {len(node)})")
    return index


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    """The container that holds the pointer's target, and the target's key in it."""
    tokens = _tokens(pointer)
    if not tokens:
        raise PatchError("operations on the whole document are not supported")
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, adding=False)]
        else:
            raise PatchError(f"doc is missing path: {pointer!r}")
    if not isinstance(node, (dict, list)):
        raise PatchError(f"doc is missing path: {pointer!r}")
    return node, tokens[-1]


def _get(doc: Any, pointer: str) -> Any:
    node, key = _parent(doc, pointer)
    if isinstance(node, list):
        return node[_index(node, key, adding=False)]
    if key not in node:
        raise PatchError(f"doc is missing key: {pointer!r}")
    return node[key]


def _add(doc: Any, pointer: str, value: Any) -> None:
    node, key = _parent(doc, pointer)
    if isinstance(node, list):
        node.insert(_index(node, key, adding=True), value)
    else:
        node[key] = value


def _remove(doc: Any, pointer: str) -> Any:
    node, key = _parent(doc, pointer)
    if isinstance(node, list):
        return node.pop(_index(node, key, adding=False))
    if key not in node:
        raise PatchError(f"unable to remove nonexistent key: {key}: missing value")
    return node.pop(key)


def json_patch(doc: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """RFC 6902 add, remove, replace, move, copy and test; all or nothing (raises PatchError)."""
    out = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"an operation needs 'op' and 'path': {op!r}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{kind} operation does not apply: missing value")
        if kind == "add":
            _add(out, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(out, path)
        elif kind == "replace":
            _remove(out, path)
            _add(out, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            _add(out, path, _remove(out, op["from"]))
        elif kind == "copy":
            _add(out, path, copy.deepcopy(_get(out, op["from"])))
        elif kind == "test":
            if _get(out, path) != op["value"]:
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return out
