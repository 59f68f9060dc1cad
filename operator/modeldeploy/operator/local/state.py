"""The local state directory: the resource, its status and the platform's process table.

``state.json`` plays the part of the Kubernetes object: ``metadata``, ``spec`` and
``status`` exactly as the cluster operator would see them, plus ``windows`` (the metric
snapshot at the start of each analysis window, as docs/statistics.md describes). Every
write goes to a temporary file that is renamed over the old one, so a process killed at
any moment leaves either the old or the new state, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
PROCESSES_FILE = "processes.json"
DEFAULT_STATE_DIR = ".modeldeploy-local"


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when there is none yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


class StateDir:
    """Where one local deployment keeps everything that must survive a restart."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def processes_path(self) -> Path:
        return self.root / PROCESSES_FILE

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def fetch_cache(self) -> Path:
        return self.root / "fetch-cache"

    def load(self) -> dict[str, Any]:
        return read_json(self.state_path)

    def save(self, state: Mapping[str, Any]) -> None:
        write_json_atomic(self.state_path, state)

    def load_processes(self) -> dict[str, Any]:
        return read_json(self.processes_path)

    def save_processes(self, table: Mapping[str, Any]) -> None:
        write_json_atomic(self.processes_path, table)


def merge_resource(
    old: Mapping[str, Any], manifest: Mapping[str, Any], generation_bump: bool = True
) -> dict[str, Any]:
    """The state after (re-)applying ``manifest``: its metadata and spec, the old status.

    ``metadata.generation`` goes up by one when the spec changed, as the API server does.
    """
    old_meta = dict(old.get("metadata") or {})
    meta = dict(manifest.get("metadata") or {})
    meta.setdefault("namespace", old_meta.get("namespace", "local"))
    generation = int(old_meta.get("generation") or 0)
    if generation == 0 or (generation_bump and old.get("spec") != manifest.get("spec")):
        generation += 1
    meta["generation"] = generation
    meta.setdefault("uid", old_meta.get("uid") or f"local-{meta.get('name', '')}")
    return {
        "apiVersion": manifest.get("apiVersion", "modeldeploy.io/v1alpha1"),
        "kind": manifest.get("kind", "ModelDeployment"),
        "metadata": meta,
        "spec": dict(manifest.get("spec") or {}),
        "status": dict(old.get("status") or {}),
        "windows": dict(old.get("windows") or {}),
        "events": list(old.get("events") or []),  # they outlive a re-apply, like Events
    }


EVENTS_KEPT = 100


def add_event(
    events: list[dict[str, Any]], event: Mapping[str, Any], limit: int = EVENTS_KEPT
) -> list[dict[str, Any]]:
    """``events`` with ``event`` recorded as Kubernetes records Events.

    The same (type, reason, message) again raises the old entry's ``count`` and
    ``lastTime`` and moves it to the end, so a fault repeated every tick is one line
    with a count; only the last ``limit`` distinct events are kept.
    """
    key = (event.get("type"), event.get("reason"), event.get("message"))
    kept = [e for e in events if (e.get("type"), e.get("reason"), e.get("message")) != key]
    same = [e for e in events if (e.get("type"), e.get("reason"), e.get("message")) == key]
    first = same[0] if same else {}
    count = int(first.get("count") or 1) + 1 if same else 1
    entry = {
        **dict(event),
        "time": first.get("time", event.get("time")),
        "lastTime": event.get("time"),
        "count": count,
    }
    return [*kept, entry][-limit:]
