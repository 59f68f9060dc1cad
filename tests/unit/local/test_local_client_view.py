"""Local mode passes the spec's client view to every predictor and to the router, and tells
the router each arm's version (a label-view answer names none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.local.platform import LocalOptions, LocalPlatform
from modeldeploy.operator.local.state import StateDir
from modeldeploy.operator.platforms.base import Target
from modeldeploy.serving.contract.args import parse_predictor_args
from tests.unit.local.test_local_auth import Processes, _flag

SPEC = {"model": {"name": "m", "registryUri": "http://127.0.0.1:9"}}
V1, V2, V3 = VersionRef("1"), VersionRef("2"), VersionRef("3")


def target(**serving: str) -> Target:
    spec = parse_spec({**SPEC, **({"serving": serving} if serving else {})})
    return Target("s", "default", spec, registry_uri="http://127.0.0.1:9")


class Recorder(Processes):
    """Also keeps the bodies of the platform's calls to the router."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch)
        self.bodies: list[tuple[str, Any]] = []

    def http_json(
        self, method: str, url: str, body: Any = None, headers: Any = None, **_: Any
    ) -> Any:
        self.bodies.append((url.rsplit("/", 1)[-1], body))
        if url.endswith("/router/arms"):
            return {}
        return super().http_json(method, url, body, headers)


def test_the_default_is_the_label_view_and_the_router_knows_the_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Recorder(monkeypatch)
    platform = LocalPlatform(StateDir(tmp_path / "state"), LocalOptions())
    platform.set_canary(target(), V1, V2, 10)
    for name in ("s-stable-v1", "s-canary-v2"):
        assert parse_predictor_args(fake.argv[name][3:]).response_detail == "label"
    router = fake.argv["s-router"]
    assert _flag(router, "--response-detail") == "label"
    assert (_flag(router, "--stable-version"), _flag(router, "--canary-version")) == ("1", "2")

    # A new canary in place (PUT /router/arms): its version travels with its URL.
    platform.set_canary(target(), V1, V3, 10)
    arms = [body for path, body in fake.bodies if path == "arms"]
    assert arms and (arms[-1]["stable_version"], arms[-1]["canary_version"]) == ("1", "3")


def test_the_full_view_reaches_every_process_and_a_change_restarts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Recorder(monkeypatch)
    platform = LocalPlatform(StateDir(tmp_path / "state"), LocalOptions())
    platform.set_canary(target(responseDetail="full"), V1, V2, 10)
    assert parse_predictor_args(fake.argv["s-canary-v2"][3:]).response_detail == "full"
    assert _flag(fake.argv["s-router"], "--response-detail") == "full"
    fake.argv.clear()
    platform.set_canary(target(), V1, V2, 10)  # back to the label view: nothing adopted
    assert set(fake.argv) == {"s-stable-v1", "s-canary-v2", "s-router"}
    assert _flag(fake.argv["s-router"], "--response-detail") == "label"
    assert parse_predictor_args(fake.argv["s-stable-v1"][3:]).response_detail == "label"
