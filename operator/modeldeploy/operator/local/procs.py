"""Small process management for local mode: start, adopt, wait for, and stop children.

Each child runs in its own session (so a stop reaches the whole group) and writes to a
log file. A ``ProcRecord`` is plain data that fits in the state directory, so a restarted
``local apply`` can adopt processes that are still alive and healthy, or stop them.

``start`` hands the record to ``on_spawn`` *before* it waits for readiness, so the caller
writes it to ``processes.json`` first: an operator killed while a child starts leaves a
recorded child, never an orphan. The ``Popen`` of each child is kept, so its exit code
is known when it dies ("canary process exited (code 1)"); ``strays`` finds children by
their command line for the case the record itself was never written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modeldeploy.operator.local import priority
from modeldeploy.operator.local.cpus import pin
from modeldeploy.serving.ports import pick_port


class StartFailed(RuntimeError):
    """A child exited or did not become ready in time; the message has its log tail.

    ``reason`` is one line for a status or an Event: the exit code and the last line the
    child wrote (a Python error ends with ``Type: message``, e.g. the file whose hash failed).
    """

    def __init__(self, message: str, reason: str = "", log: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message.splitlines()[0]
        self.log = log


# Our children's Popen objects: kept so the exit code survives (subprocess reaps the
# zombies of forgotten Popen objects itself, and the code would be lost).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and that no other process on
    this machine is handed meanwhile (:func:`modeldeploy.serving.ports.pick_port`: two
    local-mode runs, or a run and a test worker, never race for one)."""
    return pick_port()


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return False


def exit_code(pid: int) -> int | None:
    """The exit code of our child ``pid`` once it has ended (-N: killed by signal N)."""
    popen = _CHILDREN.get(pid)
    return popen.poll() if popen is not None else None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid in _CHILDREN:
        return _CHILDREN[pid].poll() is None
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


def last_line(path: str | Path) -> str:
    """The last non-empty line a child wrote (a traceback's ``Type: message``), or ''."""
    lines = [line.strip() for line in log_tail(path).splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def exit_reason(record: ProcRecord) -> str:
    """Why ``record``'s process is gone, in one line: exit code and its last output line."""
    code = exit_code(record.pid)
    if code is not None and code < 0:  # killed: its last output line says nothing about why
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"process exited (code {code}, {name})"
    head = f"process exited (code {code})" if code is not None else "process is gone"
    line = last_line(record.log)
    return f"{head}: {line}" if line else head


def strays(module: str, marker: str, known: set[int] | None = None) -> list[int]:
    """Live ``python -m module`` processes whose arguments hold ``marker`` (a path inside
    this state directory) and that ``known`` does not list: children whose record was
    never written. Only that module: the shell or operator that names the state
    directory is never matched."""
    found = []
    known = known or set()
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = entry.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        pid = int(entry.parent.name)
        if pid == os.getpid() or pid in known or "-m" not in argv:
            continue
        if argv[argv.index("-m") + 1 :][:1] == [module] and any(marker in a for a in argv):
            found.append(pid)
    return sorted(found)


def kill_pid(pid: int, timeout: float = 15.0) -> None:
    """Stop a process known only by its pid (its group if it leads one)."""
    stop(ProcRecord("stray", pid, 0, ""), timeout)


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
    on_spawn: Callable[[ProcRecord], None] | None = None,
    cpus: frozenset[int] | None = None,
    lower_priority_by: int = 0,
) -> ProcRecord:
    """Start ``argv`` in its own session and wait until ``ready()``; raise ``StartFailed``.

    ``on_spawn(record)`` runs right after the process exists and before any wait, so the
    caller can record it (see the module docstring). ``cpus``: pin the child to these CPUs
    the moment it exists, before its interpreter has started any thread (``cpus.pin``); a
    pin the kernel refuses is reported through ``progress`` and the child runs unpinned
    (pinning makes latencies comparable, nothing depends on it to be correct).
    ``lower_priority_by``: start the child that many nice steps below this process, its
    session's autogroup included (``priority.lower``); a refusal is reported the same way.
    """
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
    _CHILDREN[popen.pid] = popen
    if cpus is not None:
        try:
            pin(popen.pid, cpus)
        except OSError as exc:
            if progress is not None:
                progress(f"! {name}: cannot pin to CPUs {sorted(cpus)}: {exc}; it runs unpinned")
    if lower_priority_by:
        try:
            priority.lower(popen.pid, lower_priority_by)
        except OSError as exc:
            if progress is not None:
                progress(f"! {name}: cannot lower its CPU priority: {exc}; it runs at ours")
    record = ProcRecord(name, popen.pid, port, str(log_path), dict(labels or {}))
    if on_spawn is not None:
        on_spawn(record)
    return wait_ready(record, ready, timeout, progress)


def wait_ready(
    record: ProcRecord,
    ready: Callable[[], bool],
    timeout: float,
    progress: Callable[[str], None] | None = None,
) -> ProcRecord:
    """Wait until ``ready()`` while the process lives; stop it and raise ``StartFailed``
    when it exits or the time is up. Also used to finish adopting a half-started child."""
    name, log_path = record.name, record.log
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last_note = started
    while time.monotonic() < deadline:
        if not record.alive():
            reason = exit_reason(record)
            raise StartFailed(
                f"{name} exited while starting ({reason}):\n{log_tail(log_path)}", reason, log_path
            )
        if ready():
            return record
        if progress is not None and time.monotonic() - last_note >= 10:
            last_note = time.monotonic()
            progress(f"  ... waiting for {name} ({time.monotonic() - started:.0f}s)")
        time.sleep(0.3)
    stop(record)
    reason = f"not ready after {timeout:.0f}s: {last_line(log_path)}"
    raise StartFailed(f"{name} {reason}:\n{log_tail(log_path)}", reason, log_path)


def stop(record: ProcRecord, timeout: float = 15.0) -> None:
    """SIGTERM the child's process group, SIGKILL after ``timeout``; idempotent."""
    if not record.alive():
        return
    try:
        os.killpg(record.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):  # not a group leader (or not ours)
        try:
            os.kill(record.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not record.alive():
            return
        time.sleep(0.1)
    try:
        os.killpg(record.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(record.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
    for _ in range(50):
        if not record.alive():
            return
        time.sleep(0.1)
