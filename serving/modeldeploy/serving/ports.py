"""Local ports for the processes this machine starts (Triton in local mode and benchmarks,
servers in the tests), handed out so that two callers never get the same one.

Binding port 0 and closing the socket names a port that is free *now*, but the kernel may
hand the same port to another process before the caller's child binds it: two pytest
workers once started a predictor and a tritonserver on the same port in the same second,
and both failed. :func:`pick_port` takes ports from a counter that every process on the
machine shares (a file under the temporary directory, locked while it is read and
advanced), in a range below Linux's default ephemeral range (32768-60999), so neither
another caller nor an outgoing connection's source port takes it meanwhile. A port is
handed out only if it can be bound at that moment.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from pathlib import Path

PORT_RANGE = (20000, 32000)
"""Ports handed out, low inclusive, high exclusive: below the kernel's ephemeral range."""
COUNTER_FILE = "modeldeploy-ports.next"


def _counter_path() -> Path:
    return Path(tempfile.gettempdir()) / COUNTER_FILE


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str = "127.0.0.1", counter: Path | None = None) -> int:
    """A port on ``host`` that nothing listens on now and that no caller on this machine
    was handed recently (the next one the shared counter gives that can be bound)."""
    low, high = PORT_RANGE
    span = high - low
    path = counter or _counter_path()
    with open(path, "a+") as state:
        fcntl.flock(state, fcntl.LOCK_EX)
        state.seek(0)
        raw = state.read().strip()
        # A fresh counter starts at a point that depends on the process, not at `low`.
        start = int(raw) if raw.isdigit() else low + os.getpid() % span
        for step in range(span):
            port = low + (start - low + step) % span
            if _bindable(host, port):
                state.seek(0)
                state.truncate()
                state.write(str(low + (port + 1 - low) % span))
                state.flush()
                return port
    raise OSError(f"no port in {low}-{high - 1} can be bound on {host}")
