"""Local process management: start and wait, a failed start explains itself, stop."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modeldeploy.operator.local import procs


def test_a_started_server_is_ready_then_stopped(tmp_path: Path) -> None:
    port = procs.free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    rec = procs.start(
        "web", argv, port=port, log_dir=tmp_path, ready=lambda: procs.http_ok(
            f"http://127.0.0.1:{port}/"), timeout=60, labels={"role": "x"},
    )  # fmt: skip
    try:
        assert rec.alive() and procs.http_ok(rec.url + "/")
        assert procs.ProcRecord.from_dict(rec.to_dict()) == rec
    finally:
        procs.stop(rec)
    assert not rec.alive() and not procs.http_ok(rec.url + "/")
    procs.stop(rec)  # idempotent


def test_a_process_that_exits_while_starting_raises_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('boom: no model here'); raise SystemExit(3)"]
    with pytest.raises(procs.StartFailed, match="boom: no model here"):
        procs.start("bad", argv, port=1, log_dir=tmp_path, ready=lambda: False, timeout=60)


def test_a_dead_pid_is_not_alive() -> None:
    assert not procs.ProcRecord("x", 0, 1, "").alive()
