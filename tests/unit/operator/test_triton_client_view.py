"""A Triton arm is never deployed silently under a label view it cannot honour.

Repositories published since Triton honours the label view (every registry version as
Triton version 1, the registry version in the unit) are deployed under either view. One
published before names the registry version in every answer and always returns the
probabilities: under ``label`` the tick refuses it with the reason in the status, an Event
and the log (what the handler logs), and applies nothing; under ``full`` it is deployed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.operator.reconcile import Deps, tick
from modeldeploy.registry.triton import TAG_TRITON_MANIFEST, label_view_ready
from tests.support.in_memory_registry import InMemoryRegistry
from tests.support.windows import FixedWindows

MODEL = {"name": "sentiment", "registryUri": "http://mlflow:5000"}
DIGEST = {"size": 1, "sha256": "0" * 64}


def manifest(*files: str) -> str:
    return json.dumps({"version": 1, "files": {f: DIGEST for f in files}})


CURRENT = manifest(
    "sentiment/config.pbtxt", "sentiment/1/model.onnx", "sentiment/1/modeldeploy-version.json"
)
LEGACY = manifest("sentiment/config.pbtxt", "sentiment/3/model.onnx")


def test_the_manifest_tells_which_repositories_honour_the_label_view() -> None:
    assert label_view_ready({TAG_TRITON_MANIFEST: CURRENT}) is True
    assert label_view_ready({TAG_TRITON_MANIFEST: LEGACY}) is False
    assert label_view_ready({TAG_TRITON_MANIFEST: "{not json"}) is False
    assert label_view_ready({}) is None  # no Triton repository: another check's business


def test_triton_parses_under_either_view() -> None:
    for detail in ("label", "full"):
        spec = parse_spec(
            {"model": MODEL, "runtime": "triton", "serving": {"responseDetail": detail}}
        )
        assert (spec.runtime, spec.serving.response_detail) == ("triton", detail)


def run(manifest_text: str, **spec: Any) -> tuple[Any, NopPlatform, list[tuple[str, ...]]]:
    registry = InMemoryRegistry()
    version = registry.add_version("sentiment", tags={TAG_TRITON_MANIFEST: manifest_text})
    registry.set_alias("sentiment", "champion", version)
    platform, events = NopPlatform(), []
    deps = Deps(
        platform=platform,
        registry_for=lambda _: registry,
        windows=FixedWindows(None),
        emit=lambda *event: events.append(event),
    )
    body = {
        "metadata": {"name": "sentiment", "namespace": "ml", "generation": 1},
        "spec": {"model": MODEL, "runtime": "triton", **spec},
    }
    return tick(body, datetime(2026, 3, 1, tzinfo=UTC), deps), platform, events


def test_a_legacy_repository_under_the_label_view_is_refused_and_nothing_applied() -> None:
    result, platform, events = run(LEGACY)
    assert result.status.phase == "Failed"
    expected = "runtime triton: the Triton repository of sentiment version 1 was published"
    assert expected in result.invalid  # what the handler logs each tick
    assert expected in (result.status.message or "")
    assert any(expected in str(c) for c in result.status.conditions)
    assert "set spec.serving.responseDetail: full to accept that" in result.invalid
    assert platform.calls == []
    assert [(e[0], e[1]) for e in events] == [("Warning", "InvalidSpec")]
    assert expected in events[0][2]


@pytest.mark.parametrize(
    ("manifest_text", "spec"),
    [
        (CURRENT, {}),
        (LEGACY, {"serving": {"responseDetail": "full"}}),
        (CURRENT, {"serving": {"responseDetail": "full"}}),
    ],
    ids=["current-label", "legacy-full", "current-full"],
)
def test_what_can_serve_the_view_is_deployed(manifest_text: str, spec: dict[str, Any]) -> None:
    result, platform, events = run(manifest_text, **spec)
    assert result.status.phase != "Failed" and not result.invalid
    assert platform.calls  # the stable arm was applied
    assert "InvalidSpec" not in [e[1] for e in events]
