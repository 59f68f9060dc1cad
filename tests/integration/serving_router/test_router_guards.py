"""The router refuses deep JSON with a 400 and answers (and counts) its own failures."""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.serving_router.conftest import Setup

pytestmark = pytest.mark.asyncio


def own_errors(setup: Setup) -> float | None:
    return setup.router.metrics.registry.get_sample_value(
        "modeldeploy_server_errors_total",
        {"deployment": "demo", "component": "router", "status": "500"},
    )


async def test_deep_json_is_a_400_not_a_recursion_error(start_router):
    setup = await start_router()
    deep = b'{"instances": ["good"], "id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with aiohttp.ClientSession() as session:
        for path in ("/v1/models/m:predict", "/v2/models/m/infer", "/v1/feedback"):
            async with session.post(setup.url + path, data=deep) as response:
                assert response.status == 400
                assert "nested deeper" in (await response.json())["error"]
    assert all(not arm.predictions for arm in setup.arms.values())  # nothing forwarded
    assert own_errors(setup) == 0


async def test_a_router_failure_is_a_counted_json_500_and_the_router_stays_up(
    start_router, monkeypatch: pytest.MonkeyPatch
):
    setup = await start_router(canary=False)

    def broken(*_args, **_kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(setup.router.book, "record", broken)
    async with aiohttp.ClientSession() as session:
        url = setup.url + "/v1/models/m:predict"
        async with session.post(url, json={"instances": ["good"]}) as response:
            assert response.status == 500
            assert (await response.json())["code"] == "internal_error"
        assert own_errors(setup) == 1
        monkeypatch.undo()
        async with session.post(url, json={"instances": ["good"]}) as response:
            assert response.status == 200
    assert own_errors(setup) == 1
