"""``modeldeploy operator run`` hands kopf a peering mode it can run in."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from modeldeploy.operator.runner import run_operator


@pytest.mark.parametrize(("standalone", "peering"), [(True, None), (False, "modeldeploy")])
def test_standalone_names_no_peering_so_kopf_does_not_wait_for_one(
    monkeypatch: pytest.MonkeyPatch, standalone: bool, peering: str | None
) -> None:
    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(kopf, "operator", operator)
    args = {"namespaces": ["ml"], "all_namespaces": False, "liveness": ""}
    assert run_operator(standalone=standalone, peering="modeldeploy", **args) == 0
    assert seen["standalone"] is standalone and seen["peering_name"] == peering
