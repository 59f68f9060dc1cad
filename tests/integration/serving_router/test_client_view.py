"""Can a client tell which arm served it? Real predictors (stable ``tiny`` version 1, canary
``tiny-distilbert`` version 2) with local mode's credentials, a router at 50/50 in front.

In the label view (the default) every answer, through the router or straight from either
predictor (as on KServe, where a client reaches the revisions through one URL), has the
same structure, the same headers and the same length, and names no version; the request
ids the predictors issue do not name their role. In the full view the answers name the
version and carry the probabilities, as before. The labels still count per arm: the
router logs each answer under its arms table's version, and the joiner's counters show it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.serving.auth import Auth
from modeldeploy.serving.joiner.pairing import Plan, Rescorer
from modeldeploy.serving.router.pairing import RescoreBudget, StoredInput
from tests.support.two_arms import TwoArms, call, metric_sum, two_arms

pytestmark = pytest.mark.slow
TEXT = "a wonderful, moving film with a fine cast"
V2 = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [TEXT]}]}
REQUESTS = "modeldeploy_requests_total"


@pytest.fixture(scope="module", params=["label", "full"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[str, TwoArms, str]
]:  # fmt: skip
    detail = request.param
    with two_arms(tmp_path_factory.mktemp(f"client-view-{detail}"), detail) as arms:
        router = arms.router(
            f"router-{detail}", "--response-detail", detail, "--seed", "3", weight=50
        )
        yield detail, arms, router


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys, list lengths and scalar types, no values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def ask(url: str, protocol: str) -> tuple[Any, dict[str, str]]:
    path, body = (
        ("/v1/models/m:predict", {"instances": [TEXT]})
        if protocol == "v1"
        else ("/v2/models/m/infer", V2)
    )
    status, answer, headers = call("POST", url + path, body)
    assert status == 200, answer
    headers.pop("date", None)  # the clock, not the arm
    return answer, headers


def served(arms: TwoArms) -> dict[str, float]:
    return {role: metric_sum(url, REQUESTS) for role, url in arms.urls.items()}


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_through_the_router_the_two_arms_answer_alike_or_name_themselves(
    pair: tuple[str, TwoArms, str], protocol: str
) -> None:
    detail, arms, router = pair
    before = served(arms)
    answers = [ask(router, protocol) for _ in range(24)]
    after = served(arms)
    assert all(after[r] > before[r] for r in arms.urls), "both arms must have served"
    text = [json.dumps(body) for body, _ in answers]
    if detail == "label":
        assert len({json.dumps(shape(body)) for body, _ in answers}) == 1
        assert len({tuple(sorted(h)) for _, h in answers}) == 1
        assert len({h["content-length"] for _, h in answers}) == 1  # not even the length
        assert all("x-modeldeploy-arm" not in h for _, h in answers)
        for body in text:
            assert "probabilities" not in body and "confidence" not in body
        versions = {body.get("model_version") for body, _ in answers}
        assert versions == {None}
    else:
        versions = {body["model_version"] for body, _ in answers}
        assert versions == {"1", "2"}
        assert all("probabilities" in body for body in text)


def test_straight_from_the_predictors_the_arms_answer_alike_or_name_themselves(
    pair: tuple[str, TwoArms, str],
) -> None:
    """As on KServe: the client reaches a revision, which issues the request id itself."""
    detail, arms, _ = pair
    for protocol in ("v1", "v2"):
        got = {role: ask(url, protocol) for role, url in arms.urls.items()}
        (stable, stable_headers), (canary, canary_headers) = got["stable"], got["canary"]
        if detail == "full":
            assert (stable["model_version"], canary["model_version"]) == ("1", "2")
            continue
        assert shape(stable) == shape(canary)
        assert sorted(stable_headers) == sorted(canary_headers)
        assert stable_headers["content-length"] == canary_headers["content-length"]
        for role in ("stable", "canary"):
            body, headers = got[role]
            assert role not in headers["x-request-id"] and role not in json.dumps(body)


def labelled(arms: TwoArms) -> dict[str, float]:
    name = "modeldeploy_labelled_predictions_total"
    return {role: metric_sum(url, name) for role, url in arms.urls.items()}


def test_labels_still_count_per_arm_version(pair: tuple[str, TwoArms, str]) -> None:
    """The router (no joiner here) passes each label to both arms, and each predictor joins
    it to its own stored prediction: a label-view answer loses nothing downstream."""
    detail, arms, router = pair
    answers = [ask(router, "v1")[0] for _ in range(12)]
    before = {
        r: metric_sum(u, "modeldeploy_labelled_predictions_total") for r, u in arms.urls.items()
    }
    for body in answers:
        status, reply, _ = call(
            "POST", router + "/v1/feedback", {"request_id": body["request_id"], "label": 1},
            token=arms.label,
        )  # fmt: skip
        assert status == 200 and reply["counted"] is True, reply
        assert ("arms" in reply) == (detail == "full")  # which arm was right: full view only
    after = {
        r: metric_sum(u, "modeldeploy_labelled_predictions_total") for r, u in arms.urls.items()
    }
    # Pairing on label: the arm that did not serve a request scores it when its label comes.
    assert {r: after[r] - before[r] for r in arms.urls} == {"stable": 12, "canary": 12}


def test_the_arms_table_names_the_versions_in_the_router_pairs(
    pair: tuple[str, TwoArms, str],
) -> None:
    """The paired outcomes of the labels above, under the versions of the router's arms
    table (``--stable-version``/``--canary-version``), never under an empty version."""
    _, _, router = pair
    paired = metric_sum(router, "modeldeploy_paired_outcomes_total", stable_version="1",
                        canary_version="2")  # fmt: skip
    unnamed = metric_sum(router, "modeldeploy_paired_outcomes_total", stable_version="")
    assert paired > 0 and unnamed == 0


def test_the_platform_gets_the_full_view_and_the_joiners_version_check_keeps_working(
    pair: tuple[str, TwoArms, str],
) -> None:
    """A joiner re-score reaches an arm's URL, which may still be the previous revision: it
    refuses an answer of another version. In the label view only the platform's control
    token gets the version back; a label token (an application's) does not."""
    detail, arms, _ = pair
    url = arms.urls["canary"] + "/v1/models/m:predict"
    status, platform, _ = call("POST", url, {"instances": [TEXT]}, token=arms.control)
    assert status == 200 and platform["model_version"] == "2"
    assert "probabilities" in platform["predictions"][0]
    status, client, _ = call("POST", url, {"instances": [TEXT]}, token=arms.label)
    assert status == 200 and ("model_version" in client) == (detail == "full")

    credential = Auth.from_files(*token_paths(arms)).control_header()
    stored = StoredInput("", json.dumps({"instances": [TEXT]}).encode(),
                         {"content-type": "application/json"}, "v1")  # fmt: skip

    async def rescore(version: str, with_credential: bool) -> object:
        rescorer = Rescorer(RescoreBudget(100.0), 30.0, None,
                            credential if with_credential else None)  # fmt: skip
        await rescorer.open()
        try:
            return await rescorer.score(Plan("canary", url, stored, version=version))
        finally:
            await rescorer.close()

    assert asyncio.run(rescore("3", True)) == "wrong_version"
    got = asyncio.run(rescore("2", True))
    assert not isinstance(got, str) and got.predictions[0].model_version == "2"
    # Without the credential a label-view arm names no version: the check cannot refuse.
    unchecked = asyncio.run(rescore("3", False))
    assert (unchecked == "wrong_version") == (detail == "full")


def token_paths(arms: TwoArms) -> tuple[str, str]:
    return (arms.auth_args[1], arms.auth_args[3])
