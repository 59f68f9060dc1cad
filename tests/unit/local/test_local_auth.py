"""Local mode turns authentication on: token files once, passed to every process, used."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.cli import main
from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.local import platform as local_platform
from modeldeploy.operator.local import procs
from modeldeploy.operator.local.platform import LocalOptions, LocalPlatform, token_files
from modeldeploy.operator.local.runner import LocalOperator
from modeldeploy.operator.local.state import StateDir
from modeldeploy.operator.platforms.base import PlatformError, Target
from modeldeploy.serving.auth import Auth, read_tokens
from modeldeploy.serving.contract.args import parse_predictor_args

MANIFEST = {
    "kind": "ModelDeployment",
    "metadata": {"name": "s"},
    "spec": {"model": {"name": "m", "registryUri": "http://127.0.0.1:9"}},
}
TARGET = Target("s", "default", parse_spec(MANIFEST["spec"]), registry_uri="http://127.0.0.1:9")
V1, V2 = VersionRef("1"), VersionRef("2")


def test_apply_writes_both_token_files_once_private_and_distinct(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    LocalOperator(state, out=lambda line: None).apply(MANIFEST)
    label, control = token_files(state)
    first = (label.read_text(), control.read_text())
    for path in (label, control):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(label.parent.stat().st_mode) == 0o700
    Auth.from_files(label, control)  # usable as is: refuses a token in both files
    LocalOperator(state, out=lambda line: None).apply(MANIFEST)
    assert (label.read_text(), control.read_text()) == first  # reused, not rotated


def test_an_invalid_spec_writes_no_tokens(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    bad = {**MANIFEST, "spec": {"model": {"name": "m"}, "rollout": {"steps": [60, 30]}}}
    with pytest.raises(ValueError):
        LocalOperator(state, out=lambda line: None).apply(bad)
    assert not any(path.exists() for path in token_files(state))


class Processes:
    """Records every started argv and every router call (with its headers)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.argv: dict[str, list[str]] = {}
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.weight = 0.0
        self.port = 41000
        monkeypatch.setattr(procs, "start", self.start)
        monkeypatch.setattr(procs, "stop", lambda record, timeout=15.0: None)
        monkeypatch.setattr(procs, "http_ok", lambda url, timeout=2.0: True)
        monkeypatch.setattr(procs, "free_port", self.free_port)
        monkeypatch.setattr(local_platform, "_http_json", self.http_json)

    def free_port(self) -> int:
        self.port += 1
        return self.port

    def start(self, name: str, argv: list[str], *, port: int, labels: Any = None, **_: Any):
        self.argv[name] = list(argv)
        if "--weight" in argv:
            self.weight = float(argv[argv.index("--weight") + 1])
        return procs.ProcRecord(name, 1, port, "", dict(labels or {}))

    def http_json(self, method: str, url: str, body: Any = None, headers: Any = None) -> Any:
        self.calls.append((method, url, dict(headers or {})))
        if method == "PUT":
            self.weight = float(body["canary"])
        return {"canary": self.weight}


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_every_process_gets_both_files_and_router_calls_carry_the_control_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Processes(monkeypatch)
    state = StateDir(tmp_path / "state")
    LocalOperator(state, out=lambda line: None).apply(MANIFEST)
    label, control = token_files(state)
    platform = LocalPlatform(state, LocalOptions())
    platform.set_canary(TARGET, V1, V2, 10)
    platform.set_traffic(TARGET, V1, V2, 50)
    assert platform.read_traffic(TARGET) == 50

    for role in ("stable-v1", "canary-v2"):
        options = parse_predictor_args(fake.argv[f"s-{role}"][3:])
        assert (options.label_token_file, options.control_token_file) == (label, control)
    router = fake.argv["s-router"]
    assert _flag(router, "--label-token-file") == str(label)
    assert _flag(router, "--control-token-file") == str(control)
    wanted = "Bearer " + read_tokens(control)[0].decode()
    assert [c[0] for c in fake.calls] == ["PUT", "GET"]
    assert all(c[1].endswith("/router/weights") for c in fake.calls)
    assert all(c[2]["Authorization"] == wanted for c in fake.calls)


def test_without_token_files_the_processes_run_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Processes(monkeypatch)
    platform = LocalPlatform(StateDir(tmp_path / "state"), LocalOptions())
    platform.set_canary(TARGET, V1, V2, 10)
    platform.set_traffic(TARGET, V1, V2, 20)
    assert all("--label-token-file" not in argv for argv in fake.argv.values())
    assert fake.calls and all("Authorization" not in c[2] for c in fake.calls)


def test_reassert_sets_a_moved_weight_back_and_says_what_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Processes(monkeypatch)
    state = StateDir(tmp_path / "state")
    LocalOperator(state, out=lambda line: None).apply(MANIFEST)
    platform = LocalPlatform(state, LocalOptions())
    platform.set_canary(TARGET, V1, V2, 10)
    assert platform.reassert_traffic(TARGET, 10) is None
    fake.weight = 90.0  # a hand-made PUT /router/weights
    assert platform.reassert_traffic(TARGET, 10) == 90
    assert fake.weight == 10.0 and platform.reassert_traffic(TARGET, 10) is None


def test_a_damaged_control_token_file_is_a_permanent_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Processes(monkeypatch)
    state = StateDir(tmp_path / "state")
    LocalOperator(state, out=lambda line: None).apply(MANIFEST)
    platform = LocalPlatform(state, LocalOptions())
    platform.set_canary(TARGET, V1, V2, 10)
    token_files(state)[1].write_text("short\n")
    with pytest.raises(PlatformError, match="control-token") as info:
        platform.set_traffic(TARGET, V1, V2, 50)
    assert not info.value.transient


def test_status_says_where_the_label_token_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = StateDir(tmp_path / "state")
    LocalOperator(state, out=lambda line: None).apply(MANIFEST)
    assert main(["local", "status", "--state-dir", str(state.root)]) == 0
    out = capsys.readouterr().out
    label = token_files(state)[0]
    assert f"LABELS   token in {label}" in out
    assert read_tokens(label)[0].decode() not in out  # where, never what
