"""The local state file: atomic writes, and re-applying a manifest as the API server would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldeploy.operator.local.state import (
    EVENTS_KEPT,
    StateDir,
    add_event,
    merge_resource,
    read_json,
    write_json_atomic,
)

MANIFEST = {"metadata": {"name": "s"}, "spec": {"model": {"name": "m"}}}


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_failed_write_keeps_the_old_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})  # not JSON-serialisable
    assert read_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_missing_state_reads_as_empty(tmp_path: Path) -> None:
    assert StateDir(tmp_path / "nothing").load() == {}


def test_first_apply_is_generation_one_and_keeps_no_status() -> None:
    state = merge_resource({}, MANIFEST)
    assert state["metadata"]["generation"] == 1
    assert state["status"] == {} and state["spec"] == MANIFEST["spec"]


def test_reapplying_the_same_spec_keeps_generation_and_status() -> None:
    first = merge_resource({}, MANIFEST)
    first["status"] = {"phase": "Progressing"}
    again = merge_resource(first, MANIFEST)
    assert again["metadata"]["generation"] == 1
    assert again["status"] == {"phase": "Progressing"}


def test_a_changed_spec_bumps_the_generation_and_keeps_the_status() -> None:
    first = merge_resource({}, MANIFEST)
    first["status"] = {"phase": "Stable"}
    changed = {**MANIFEST, "spec": {"model": {"name": "m"}, "rollout": {"steps": [50, 100]}}}
    again = merge_resource(first, changed)
    assert again["metadata"]["generation"] == 2
    assert again["status"] == {"phase": "Stable"}


def test_events_survive_a_re_apply() -> None:
    old = merge_resource({}, MANIFEST)
    old["events"] = [{"time": "t0", "type": "Normal", "reason": "Initialized", "message": "m"}]
    assert merge_resource(old, MANIFEST)["events"] == old["events"]


def test_a_repeated_event_is_one_entry_with_a_count_and_the_list_is_bounded() -> None:
    events: list = []
    for i in range(3):
        events = add_event(
            events, {"time": f"t{i}", "type": "Warning", "reason": "R", "message": "x"}
        )
    events = add_event(events, {"time": "t9", "type": "Normal", "reason": "Other", "message": "y"})
    assert [(e["reason"], e["count"]) for e in events] == [("R", 3), ("Other", 1)]
    assert events[0]["time"] == "t0" and events[0]["lastTime"] == "t2"
    for i in range(150):
        events = add_event(
            events, {"time": "t", "type": "Normal", "reason": "N", "message": str(i)}
        )
    assert len(events) == EVENTS_KEPT and events[-1]["message"] == "149"
