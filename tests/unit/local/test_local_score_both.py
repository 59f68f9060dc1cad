"""Local mode runs its router in score-both mode (docs/local-mode.md): both arms serve the
same stream on one machine, so their P99s compare like with like."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from modeldeploy.operator.local.platform import ROUTER, SCORE_BOTH, LocalOptions, LocalPlatform
from modeldeploy.operator.local.state import StateDir
from modeldeploy.serving.router.__main__ import build_parser, config_from
from tests.unit.local.test_local_client_view import V1, V2, Recorder, target


def test_the_router_is_started_in_score_both_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Recorder(monkeypatch)
    platform = LocalPlatform(StateDir(tmp_path / "state"), LocalOptions())
    platform.set_canary(target(), V1, V2, 10)
    argv = fake.argv["s-router"]
    assert "--score-both" in argv
    assert config_from(build_parser().parse_args(argv[3:])).score_both is True


def test_a_router_from_before_score_both_is_restarted_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Recorder(monkeypatch)
    platform = LocalPlatform(StateDir(tmp_path / "state"), LocalOptions())
    platform.set_canary(target(), V1, V2, 10)
    fake.argv.clear()
    platform.set_canary(target(), V1, V2, 20)  # same arms, same router: a weight change only
    assert "s-router" not in fake.argv
    arms = platform._arms(target())
    old = dict(arms[ROUTER].labels)
    old.pop(SCORE_BOTH)
    arms[ROUTER] = replace(arms[ROUTER], labels=old)  # as a router of an older release
    platform.set_canary(target(), V1, V2, 20)
    assert "--score-both" in fake.argv["s-router"]
