"""Local mode starts its router, joiner and prober (and the demo its traffic driver) below
the predictors' CPU priority, their session's autogroup included (``local/priority.py``)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.operator.local import cli as local_cli
from modeldeploy.operator.local import procs
from modeldeploy.operator.local.platform import LocalOptions, LocalPlatform
from modeldeploy.operator.local.priority import (
    HELPER_NICENESS,
    NICE_MAX,
    autogroup_niceness,
    lower,
    lowered,
    niceness,
)
from modeldeploy.operator.local.state import StateDir
from modeldeploy.tools.demo.traffic import TrafficProcess, TrafficSettings, TrafficStats
from tests.unit.local.test_local_client_view import V1, V2, Recorder, target

AUTOGROUPS = Path("/proc/self/autogroup").exists()


@pytest.mark.parametrize(("current", "by", "expected"), [(0, 10, 10), (5, 10, 15), (15, 10, 19)])
def test_lowered_adds_steps_up_to_the_lowest_priority(current: int, by: int, expected: int) -> None:
    assert lowered(current, by) == expected


def test_a_priority_is_never_raised() -> None:
    with pytest.raises(ValueError, match="only lower"):
        lowered(0, -1)


def _tasks(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def test_a_real_helper_its_later_threads_and_its_session_run_lower(tmp_path: Path) -> None:
    """Started in its own session (as every local child is): each thread is lowered, and so
    is the session's autogroup, which is what orders it against the predictors' sessions."""
    ours = niceness(0)
    code = (
        "import threading, time; time.sleep(0.5); "
        "threading.Thread(target=time.sleep, args=(30,)).start(); time.sleep(30)"
    )
    seen: list[procs.ProcRecord] = []
    record = procs.start(
        "helper",
        [sys.executable, "-c", code],
        port=0,
        log_dir=tmp_path,
        ready=lambda: bool(seen) and len(_tasks(seen[0].pid)) >= 2,
        timeout=30,
        on_spawn=seen.append,
        lower_priority_by=HELPER_NICENESS,
    )
    try:
        tasks = _tasks(record.pid)
        assert len(tasks) >= 2  # the second thread started after the child was lowered
        assert {niceness(t) for t in tasks} == {lowered(ours, HELPER_NICENESS)}
        assert os.getsid(record.pid) == record.pid
        if AUTOGROUPS:  # a fresh session's autogroup starts at 0
            assert autogroup_niceness(record.pid) == HELPER_NICENESS
    finally:
        procs.stop(record, timeout=5)


def test_a_child_in_our_session_is_lowered_but_our_autogroup_is_not() -> None:
    """The autogroup belongs to the whole session: lowering it for a child that shares ours
    would lower this process, and the user's shell, too."""
    before = autogroup_niceness(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lower(child.pid, 3)
        assert niceness(child.pid) == lowered(niceness(0), 3)
        assert autogroup_niceness(os.getpid()) == before
    finally:
        child.kill()
        child.wait()


def test_lowering_by_zero_changes_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lower(child.pid, 0)
        assert niceness(child.pid) == niceness(0)
    finally:
        child.kill()
        child.wait()


class Priorities(Recorder):
    """Also records how far below us each process was asked to start."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch)
        self.lowered_by: dict[str, int] = {}

    def start(self, name: str, argv: list[str], *, port: int, labels: Any = None, **kw: Any):
        self.lowered_by[name] = kw.get("lower_priority_by", 0)
        return super().start(name, argv, port=port, labels=labels)


@pytest.mark.parametrize("helper_niceness", [HELPER_NICENESS, 0, 4])
def test_helpers_start_below_the_predictors_which_keep_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper_niceness: int
) -> None:
    fake = Priorities(monkeypatch)
    options = LocalOptions(helper_niceness=helper_niceness)
    LocalPlatform(StateDir(tmp_path / "state"), options).set_canary(target(), V1, V2, 10)
    assert fake.lowered_by["s-stable-v1"] == fake.lowered_by["s-canary-v2"] == 0
    assert fake.lowered_by["s-router"] == fake.lowered_by["s-joiner"] == helper_niceness


def test_the_default_options_lower_the_helpers() -> None:
    assert LocalOptions().helper_niceness == HELPER_NICENESS == 10


def _apply_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    local_cli.register(parser.add_subparsers())
    return parser


def test_local_apply_takes_the_helpers_niceness_from_its_flag() -> None:
    parse = _apply_parser().parse_args
    default = local_cli.local_options(parse(["local", "apply", "-f", "x.yaml"]))
    assert default.helper_niceness == HELPER_NICENESS
    flagged = parse(["local", "apply", "-f", "x.yaml", "--helper-niceness", "0"])
    assert local_cli.local_options(flagged).helper_niceness == 0


@pytest.mark.parametrize("value", ["-1", str(NICE_MAX + 1)])
def test_local_apply_refuses_a_niceness_outside_linux_range(value: str) -> None:
    with pytest.raises(SystemExit):
        _apply_parser().parse_args(["local", "apply", "-f", "x.yaml", "--helper-niceness", value])


class _FakeRouter(BaseHTTPRequestHandler):
    """Answers every prediction from the "stable" arm and accepts every label."""

    labels = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/feedback":
            type(self).labels += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-modeldeploy-arm", "stable")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_the_demo_driver_runs_in_a_lower_process_and_reports_its_counts(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRouter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = TrafficProcess(
        f"http://127.0.0.1:{server.server_port}",
        "m",
        work_dir=tmp_path,
        settings=TrafficSettings(rate=50.0, workers=2, label_delay_s=0.2, max_requests=40),
    ).start()
    try:
        assert driver.pid is not None
        assert niceness(driver.pid) == lowered(niceness(0), HELPER_NICENESS)
        deadline = time.monotonic() + 30
        while driver.stats.labels_sent < 40 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        driver.stop()
        server.shutdown()
    stats = driver.stats
    assert (stats.sent, stats.answered["stable"], stats.failed) == (40, 40, 0)
    assert stats.labels_sent == _FakeRouter.labels == 40
    assert "40 requests" in stats.line(1.0)


def test_the_driver_only_ever_contacts_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only sends traffic to"):
        TrafficProcess("http://example.com:80", "m", work_dir=tmp_path)


def test_settings_reach_a_child_process_unchanged(tmp_path: Path) -> None:
    settings = TrafficSettings(
        rate=7.5, workers=3, label_delay_s=1.5, max_requests=9, seed=4,
        label_token_file=tmp_path / "label-token", poisson=False,
    )  # fmt: skip
    assert TrafficSettings.from_json(settings.to_json()) == settings
    assert TrafficSettings.from_json(TrafficSettings().to_json()) == TrafficSettings()


def test_counts_reach_the_parent_unchanged() -> None:
    stats = TrafficStats(sent=3, answered=Counter(stable=2, canary=1), failed=1, labels_sent=2)
    assert TrafficStats.from_json(json.loads(json.dumps(stats.to_json()))) == stats
