"""Small process management for local mode: start, adopt, wait for, and stop children.

Each child runs in its own session (so a stop reaches the whole group) and writes to a
log file. A ``ProcRecord`` is plain data that fits in the state directory, so a restarted
``local apply`` can adopt processes that are still alive and healthy, or stop them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class StartFailed(RuntimeError):
    """A child exited or did not become ready in time; the message has its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return False


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True  # not our child (adopted): kill(0) said it exists


@dataclass(frozen=True)
class ProcRecord:
    """One child as recorded in the state directory."""

    name: str
    pid: int
    port: int
    log: str
    labels: Mapping[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = dict(self.labels)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ProcRecord:
        return cls(
            name=str(raw["name"]),
            pid=int(raw["pid"]),
            port=int(raw["port"]),
            log=str(raw.get("log", "")),
            labels=dict(raw.get("labels") or {}),
        )


def log_tail(path: str | Path, chars: int = 3000) -> str:
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return "<no log>"


def start(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    log_dir: Path,
    ready: Callable[[], bool],
    timeout: float,
    labels: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProcRecord:
    """Start ``argv`` in its own session and wait until ``ready()``; raise ``StartFailed``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    record = ProcRecord(name, popen.pid, port, str(log_path), dict(labels or {}))
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last_note = started
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise StartFailed(
                f"{name} exited with {popen.returncode} while starting:\n{log_tail(log_path)}"
            )
        if ready():
            return record
        if progress is not None and time.monotonic() - last_note >= 10:
            last_note = time.monotonic()
            progress(f"  ... waiting for {name} ({time.monotonic() - started:.0f}s)")
        time.sleep(0.3)
    stop(record)
    raise StartFailed(f"{name} not ready after {timeout:.0f}s:\n{log_tail(log_path)}")


def stop(record: ProcRecord, timeout: float = 15.0) -> None:
    """SIGTERM the child's process group, SIGKILL after ``timeout``; idempotent."""
    if not record.alive():
        return
    try:
        os.killpg(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not record.alive():
            return
        time.sleep(0.1)
    try:
        os.killpg(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(50):
        if not record.alive():
            return
        time.sleep(0.1)
