"""Manual control annotations: promote/abort name a version; pause is a flag."""

from __future__ import annotations

import pytest

from modeldeploy.operator.control import ABORT, PAUSED, PROMOTE, annotation_patch, controls_from
from modeldeploy.operator.rollout.machine import Controls


def test_annotations_map_to_controls() -> None:
    assert controls_from({PAUSED: "true", PROMOTE: "3", ABORT: "4"}) == Controls(True, "3", "4")
    assert controls_from(None) == Controls()


@pytest.mark.parametrize(
    ("command", "patch"),
    [
        ("pause", {PAUSED: "true"}),
        ("resume", {PAUSED: None}),
        ("promote", {PROMOTE: "7"}),
        ("abort", {ABORT: "7"}),
    ],
)
def test_cli_command_becomes_an_annotation_patch(command: str, patch: dict) -> None:
    assert annotation_patch(command, "7") == patch


def test_promote_without_a_canary_is_refused() -> None:
    with pytest.raises(ValueError, match="no canary"):
        annotation_patch("promote", "")
