"""A Triton arm is never deployed under the label view: its answers would name the arm.

Triton's responses carry the repository's version directory (the registry version) and
the per-class probabilities, so the default ``spec.serving.responseDetail: label`` cannot
hold there. The spec is refused with the reason in the status condition, an Event and the
log (the InvalidSpec path), and only an explicit ``full`` deploys Triton.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modeldeploy.operator.api.types import TRITON_LABEL_VIEW_PROBLEM, SpecError, parse_spec
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.operator.reconcile import Deps, tick
from tests.support.in_memory_registry import InMemoryRegistry
from tests.support.windows import FixedWindows

MODEL = {"name": "sentiment", "registryUri": "http://mlflow:5000"}


@pytest.mark.parametrize("serving", [None, {}, {"responseDetail": "label"}])
def test_triton_under_the_label_view_is_refused_with_the_way_out(serving: Any) -> None:
    raw: dict[str, Any] = {"model": MODEL, "runtime": "triton"}
    if serving is not None:
        raw["serving"] = serving
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert info.value.problems == [TRITON_LABEL_VIEW_PROBLEM]
    message = str(info.value)
    assert "runtime triton" in message and "model version" in message
    assert "set spec.serving.responseDetail: full to accept that" in message


def test_triton_with_the_full_view_and_python_with_either_view_parse() -> None:
    full = parse_spec({"model": MODEL, "runtime": "triton", "serving": {"responseDetail": "full"}})
    assert (full.runtime, full.serving.response_detail) == ("triton", "full")
    for detail in ("label", "full"):
        spec = parse_spec({"model": MODEL, "serving": {"responseDetail": detail}})
        assert (spec.runtime, spec.serving.response_detail) == ("kserve-python", detail)


def test_the_refusal_is_reported_in_status_and_an_event_and_nothing_is_deployed() -> None:
    platform, events = NopPlatform(), []
    deps = Deps(
        platform=platform,
        registry_for=lambda spec: InMemoryRegistry(),
        windows=FixedWindows(None),
        emit=lambda *event: events.append(event),
    )
    body: dict[str, Any] = {
        "metadata": {"name": "sentiment", "namespace": "ml", "generation": 1},
        "spec": {"model": MODEL, "runtime": "triton"},
    }
    result = tick(body, datetime(2026, 3, 1, tzinfo=UTC), deps)
    assert result.status.phase == "Failed"
    assert TRITON_LABEL_VIEW_PROBLEM in result.invalid  # what the handler logs each tick
    assert TRITON_LABEL_VIEW_PROBLEM in (result.status.message or "")
    assert any(TRITON_LABEL_VIEW_PROBLEM in str(c) for c in result.status.conditions)
    assert platform.calls == []
    assert [(e[0], e[1]) for e in events] == [("Warning", "InvalidSpec")]
    assert TRITON_LABEL_VIEW_PROBLEM in events[0][2]
