"""The predictor images' entrypoint, ``modeldeploy serve``, starts as the benchmark measures.

The images run the console script ``modeldeploy serve`` (images/predictor.Dockerfile), the
benchmark and local mode ``python -m modeldeploy.serving``. These tests start the real
console script and check that it takes the same path: one malloc arena (the process starts
itself again, same process id, where the environment does not choose) and the predictor's
own parser, named for the command.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import ManagedProcess, free_port, http_ok, start_process

pytestmark = pytest.mark.slow

CONSOLE_SCRIPT = Path(sys.executable).parent / "modeldeploy"


def environment_of(pid: int) -> dict[str, str]:
    """The environment the process's current program started with (after any execve)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


def start_serve(model_dir: Path, log_dir: Path, name: str) -> tuple[ManagedProcess, int]:
    """The real console script ``modeldeploy serve`` on ``model_dir``, once it is ready."""
    port = free_port()
    argv = [
        str(CONSOLE_SCRIPT), "serve", "--model-dir", str(model_dir),
        "--http-port", str(port), "--grpc-port", "0", "--threads", "1",
    ]  # fmt: skip
    ready = f"http://127.0.0.1:{port}/v2/health/ready"
    return start_process(name, argv, log_dir, lambda: http_ok(ready), timeout=120), port


def test_modeldeploy_serve_runs_with_one_malloc_arena_and_answers(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    proc, port = start_serve(tiny_checkpoint, tmp_path, "serve")
    try:
        assert environment_of(proc.pid).get("MALLOC_ARENA_MAX") == "1"  # same pid, started again
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models/classifier:predict",
            data=json.dumps({"instances": ["a moving, funny film"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert len(answer["predictions"]) == 1
        log = proc.log_path.read_text()
        assert "start-up phases: process start to build" in log
        assert "import kserve 0.00s" not in log  # kserve was not loaded by the product CLI
    finally:
        proc.stop()


def test_the_environments_arena_choice_wins(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # an image or a manifest that chose
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    proc, _ = start_serve(tiny_checkpoint, tmp_path, "serve-chosen")
    try:
        assert environment_of(proc.pid)["MALLOC_ARENA_MAX"] == "2"
    finally:
        proc.stop()


def test_a_usage_error_names_the_command_and_exits_2() -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "serve", "--model-dir", "/nonexistent", "--no-such-option"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "usage: modeldeploy serve" in done.stderr
    assert "--no-such-option" in done.stderr.splitlines()[-1]
