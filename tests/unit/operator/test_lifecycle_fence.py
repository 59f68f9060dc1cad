"""handlers.lifecycle: a tick on a body older than the status last written is skipped."""

from __future__ import annotations

from modeldeploy.operator.handlers.lifecycle import _Fence

PROMOTING = {"phase": "Promoting", "canary": {"version": "2"}, "history": []}
WRITTEN = {"phase": "Stable", "canary": None, "history": [{"version": "2"}]}


def test_a_body_without_the_last_written_status_is_stale() -> None:
    fence = _Fence()
    assert not fence.stale("uid", PROMOTING)  # nothing written yet
    fence.wrote("uid", WRITTEN)
    assert fence.stale("uid", PROMOTING)  # the snapshot predates our patch: skip the tick


def test_a_body_showing_the_last_write_is_fresh_and_clears_the_fence() -> None:
    fence = _Fence()
    fence.wrote("uid", WRITTEN)
    fresh = {"phase": "Stable", "history": [{"version": "2"}], "extra": 1}
    assert not fence.stale("uid", fresh)
    assert not fence.stale("uid", PROMOTING)  # cleared: later bodies are trusted again


def test_the_fence_expires_so_a_lost_patch_cannot_block_forever() -> None:
    fence = _Fence(expire_seconds=-1.0)
    fence.wrote("uid", WRITTEN)
    assert not fence.stale("uid", PROMOTING)


def test_objects_are_fenced_apart() -> None:
    fence = _Fence()
    fence.wrote("a", WRITTEN)
    assert not fence.stale("b", PROMOTING)
    assert fence.lock("a") is fence.lock("a") and fence.lock("a") is not fence.lock("b")
