"""Promotion and rollback records on a real server: right aliases, tags, idempotent."""

from __future__ import annotations

import pytest

from modeldeploy.registry.base import TAG_DECIDED_AT, TAG_OUTCOME, TAG_REASON
from modeldeploy.registry.decisions import promote, reject
from modeldeploy.registry.publish import publish_checkpoint

pytestmark = pytest.mark.slow


def test_promotion_and_rollback_are_recorded_once(registry, tiny_checkpoint, model_name):
    v1 = publish_checkpoint(registry, tiny_checkpoint, model_name, alias="champion").version
    v2 = publish_checkpoint(registry, tiny_checkpoint, model_name, alias="challenger").version

    reason = "accuracy 0.791 vs 0.853, 95% bound -0.041 below margin -0.01, 412 labels per arm"
    assert reject(registry, model_name, v2, reason).changed
    after_first = (
        registry.get_model(model_name).aliases,
        registry.get_version(model_name, v2).tags,
    )
    assert after_first[0] == {"champion": v1}
    assert after_first[1][TAG_OUTCOME] == "rejected" and after_first[1][TAG_REASON] == reason
    again = reject(registry, model_name, v2, "another reason")
    assert not again.changed
    assert (registry.get_model(model_name).aliases, registry.get_version(model_name, v2).tags) == (
        after_first
    )

    v3 = publish_checkpoint(registry, tiny_checkpoint, model_name, alias="challenger").version
    assert promote(registry, model_name, v3, "all gates passed").changed
    tags = registry.get_version(model_name, v3).tags
    assert registry.get_model(model_name).aliases == {"champion": v3}
    assert tags[TAG_OUTCOME] == "promoted" and tags[TAG_DECIDED_AT]
    assert not promote(registry, model_name, v3, "all gates passed").changed
    assert registry.get_version(model_name, v3).tags == tags
