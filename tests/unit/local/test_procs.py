"""Local process management: start and wait, a failed start explains itself, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def test_a_child_is_recorded_before_it_is_waited_on(tmp_path: Path) -> None:
    seen: list[procs.ProcRecord] = []

    def ready() -> bool:
        assert seen, "on_spawn must run before the first readiness check"
        return True

    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    rec = procs.start(
        "slow", argv, port=1, log_dir=tmp_path, ready=ready, timeout=60, on_spawn=seen.append
    )
    try:
        assert seen == [rec] and rec.alive()
    finally:
        procs.stop(rec)


def test_an_exit_is_explained_by_its_code_and_last_line(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-c",
        "import sys; print('loading'); sys.exit('IntegrityError: x.json')",
    ]
    with pytest.raises(procs.StartFailed) as err:
        procs.start("bad", argv, port=1, log_dir=tmp_path, ready=lambda: False, timeout=60)
    assert err.value.reason == "process exited (code 1): IntegrityError: x.json"
    assert err.value.log.endswith("bad-1.log")


def test_a_killed_child_is_explained_by_its_signal(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    rec = procs.start("k", argv, port=2, log_dir=tmp_path, ready=lambda: True, timeout=60)
    os.kill(rec.pid, signal.SIGKILL)
    for _ in range(100):
        if not rec.alive():
            break
        time.sleep(0.05)
    assert procs.exit_reason(rec) == "process exited (code -9, SIGKILL)"


def test_strays_are_found_by_module_and_marker_only(tmp_path: Path) -> None:
    marker = str(tmp_path / "state") + "/"
    argv = [sys.executable, "-m", "http.server", "0", "--directory", marker + "x"]
    other = [sys.executable, "-c", "import time; time.sleep(60)", marker]  # not the module
    stray = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bystander = subprocess.Popen(other)
    try:
        assert procs.strays("http.server", marker) == [stray.pid]
        assert procs.strays("http.server", marker, {stray.pid}) == []
        assert procs.strays("http.server", str(tmp_path / "state2") + "/") == []
        procs.kill_pid(stray.pid)
        stray.wait(timeout=20)
        assert bystander.poll() is None
    finally:
        stray.kill()
        bystander.kill()
        bystander.wait()
