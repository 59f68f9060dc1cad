"""Names KServe would refuse are refused up front: by the CRD and by the operator's tick."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from modeldeploy.operator.api.crd import build_crd
from modeldeploy.operator.api.openapi import to_jsonschema
from modeldeploy.operator.api.types import name_problems
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.operator.reconcile import Deps, tick
from tests.support.in_memory_registry import InMemoryRegistry
from tests.support.windows import FixedWindows

CRD = jsonschema.Draft7Validator(
    to_jsonschema(build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
)
LONGEST = "a" * 46  # + "-predictor-canary" is 63 characters, a DNS-1035 label's limit

GOOD = ["sentiment", "s", "sentiment-demo", "a1", LONGEST]
BAD = ["Sentiment", "1sentiment", "sentiment-", "senti_ment", "senti.ment", "", LONGEST + "b"]


@pytest.mark.parametrize("name", GOOD)
def test_dns_1035_labels_that_leave_room_for_kserve_suffixes_are_accepted(name: str) -> None:
    assert name_problems(name) == []
    assert CRD.is_valid({"metadata": {"name": name}, "spec": {"model": {"name": "m"}}})


@pytest.mark.parametrize("name", BAD)
def test_other_names_are_refused_by_the_crd_and_the_operator_alike(name: str) -> None:
    assert name_problems(name)
    assert all(p.startswith("metadata.name: ") for p in name_problems(name))
    assert not CRD.is_valid({"metadata": {"name": name}, "spec": {"model": {"name": "m"}}})


def test_the_crd_leaves_the_rest_of_metadata_to_the_api_server() -> None:
    meta = {"name": "s", "namespace": "ml", "labels": {"team": "a"}, "generation": 3}
    assert CRD.is_valid({"metadata": meta, "spec": {"model": {"name": "m"}}})


def test_a_refused_name_takes_the_invalid_spec_path_and_applies_nothing() -> None:
    platform, events = NopPlatform(), []
    deps = Deps(
        platform=platform,
        registry_for=lambda spec: InMemoryRegistry(),
        windows=FixedWindows(None),
        emit=lambda *event: events.append(event),
    )
    body: dict[str, Any] = {
        "metadata": {"name": "Sentiment_v2", "namespace": "ml", "generation": 1},
        "spec": {"model": {"name": "m"}},
    }
    result = tick(body, datetime(2026, 3, 1, tzinfo=UTC), deps)
    assert result.status.phase == "Failed"
    assert "metadata.name: 'Sentiment_v2' must be a DNS-1035 label" in result.invalid
    assert platform.calls == [] and [e[1] for e in events] == ["InvalidSpec"]
