"""The joiner's pure parts: KServe's events parsed, first write wins, ids checked, labels
resolved, pairing planned (serving/modeldeploy/serving/joiner)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modeldeploy.serving.contract.ids import ROUTER_ORIGIN, IdIssuer
from modeldeploy.serving.contract.joiner import logger_url
from modeldeploy.serving.joiner.book import JoinBook
from modeldeploy.serving.joiner.events import Arm, EventError, parse_event, protocol_of, scored
from modeldeploy.serving.joiner.pairing import ArmsFile, parse_arms, plan
from modeldeploy.serving.router.pairing import StoredInput
from tests.support.joiner_cloudevents import Agent

KEY = b"control-token-0123456789abcdef"
STABLE = Arm("demo", "stable", "1")
CANARY = Arm("demo", "canary", "2")


def v1_answer(request_id: str, indices: list[int], version: str = "1") -> bytes:
    names = ("negative", "positive")
    predictions = [
        {"id": request_id if len(indices) == 1 else f"{request_id}/{i}", "label": names[k],
         "label_index": k, "probabilities": {"negative": 0.3, "positive": 0.7}}
        for i, k in enumerate(indices)
    ]  # fmt: skip
    return json.dumps(
        {"predictions": predictions, "request_id": request_id, "model_version": version}
    ).encode()


def triton_answer(request_id: str, rows: list[list[float]]) -> bytes:
    names = ["positive" if r[1] > r[0] else "negative" for r in rows]
    return json.dumps({
        "model_name": "demo", "model_version": "1", "id": request_id,
        "outputs": [
            {"name": "LABEL", "datatype": "BYTES", "shape": [len(rows), 1], "data": names},
            {"name": "PROBABILITIES", "datatype": "FP32", "shape": [len(rows), 2],
             "data": [p for r in rows for p in r]},
        ],
    }).encode()  # fmt: skip


def test_the_agents_events_parse_with_their_link_and_kind() -> None:
    agent = Agent("demo-predictor-abc")
    (req_h, req_b), (resp_h, resp_b) = agent.events(b'{"instances": ["x"]}', b"{}", "id-1")
    request, response = parse_event(req_h, req_b), parse_event(resp_h, resp_b)
    assert (request.kind, response.kind) == ("request", "response")
    assert request.link == response.link and request.isvc == "demo"
    assert request.endpoint == "default" and request.component == "predictor"
    assert protocol_of(req_b) == "v1" and protocol_of(b'{"inputs": []}') == "v2"
    other_pod = parse_event(Agent("demo-predictor-xyz").headers(
        "org.kubeflow.serving.inference.request", "id-1", "application/json"), b"")  # fmt: skip
    assert other_pod.link != request.link


@pytest.mark.parametrize(
    ("change", "why"),
    [({"Ce-Specversion": "0.3"}, "1.0"), ({"Ce-Type": "com.example"}, "ce-type"),
     ({"Ce-Id": ""}, "ce-id")],
)  # fmt: skip
def test_what_is_not_an_inference_logger_event_is_refused(change: dict, why: str) -> None:
    headers = {**Agent("p").headers("org.kubeflow.serving.inference.response", "a", "x"), **change}
    with pytest.raises(EventError, match=why):
        parse_event(headers, b"{}")


def test_the_logger_url_names_the_arm_and_nothing_else_does() -> None:
    url = logger_url("http://joiner.ns:8081", "demo", "canary", "7 beta")
    assert Arm.from_query(url.split("?", 1)[1]) == Arm("demo", "canary", "7 beta")
    for query in ("deployment=demo&role=canary", "deployment=demo&role=boss&version=1",
                  "deployment=a&deployment=b&role=stable&version=1"):  # fmt: skip
        with pytest.raises(EventError):
            Arm.from_query(query)


def test_v1_v2_and_triton_answers_give_items_and_predictions() -> None:
    one = scored(v1_answer("r1", [1, 0]), "1")
    assert one.item_ids == ("r1/0", "r1/1") and [p.label_index for p in one.predictions] == [1, 0]
    assert one.classes == ("negative", "positive")
    v2 = json.dumps({"id": "r2", "outputs": [
        {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["positive"]},
        {"name": "label_index", "datatype": "INT64", "shape": [1], "data": [1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.2, 0.8]},
    ], "parameters": {"model_version": "9"}}).encode()  # fmt: skip
    two = scored(v2, "")
    assert two.item_ids == ("r2",) and two.predictions[0].model_version == "9"
    assert two.class_count == 2
    tri = scored(triton_answer("r3", [[0.9, 0.1], [0.2, 0.8]]), "5")
    assert [(p.label, p.label_index, p.model_version) for p in tri.predictions] == [
        ("negative", 0, "5"), ("positive", 1, "5")]  # fmt: skip
    garbage = (
        b'{"predictions": [{"label": "x", "label_index": "one"}]}',
        b'{"predictions": [{"label": "x", "label_index": [1]}]}',
        b'{"id": "r", "outputs": [{"name": "LABEL", "shape": [1, 1], "data": ["a"]},'
        b' {"name": "PROBABILITIES", "shape": [1, 2], "data": ["a", null]}]}',
        b'{"id": "r", "outputs": [{"name": "LABEL", "shape": [1, 1], "data": ["a"]},'
        b' {"name": "PROBABILITIES", "shape": [1, "k"], "data": [0.1, 0.9]}]}',
    )
    for bad in (b"[]", b"{}", b'{"predictions": [{"label_index": 1}]}', b"\xff", *garbage):
        with pytest.raises(EventError):
            scored(bad, "1")


def test_a_triton_label_view_answer_gives_its_index_and_class_count() -> None:
    def answer(indexes: object, counts: object = (3, 3)) -> bytes:
        return json.dumps({"model_name": "demo", "model_version": "1", "id": "r4", "outputs": [
            {"name": "LABEL", "datatype": "BYTES", "shape": [2, 1], "data": ["b", "c"]},
            {"name": "LABEL_INDEX", "datatype": "INT64", "shape": [2, 1], "data": indexes},
            {"name": "NUM_LABELS", "datatype": "INT64", "shape": [2, 1], "data": list(counts)},
        ]}).encode()  # fmt: skip

    tri = scored(answer([1, 2]), "6")
    assert [(p.label, p.label_index, p.model_version) for p in tri.predictions] == [
        ("b", 1, "6"), ("c", 2, "6")]  # fmt: skip
    assert tri.class_count == 3 and tri.item_ids == ("r4/0", "r4/1")
    for bad in ([1], [1, "2"], [1, True], [1, 3]):  # short, not ints, out of range
        with pytest.raises(EventError):
            scored(answer(bad), "6")
    assert scored(answer([1, 2], counts=(True, True)), "6").class_count == 0  # no count


def test_first_write_wins_per_id_and_arm_and_a_deployment_owns_its_ids() -> None:
    book = JoinBook()
    assert book.record(STABLE, scored(v1_answer("r", [1]), "1"), "l1") == "recorded"
    assert book.record(STABLE, scored(v1_answer("r", [0]), "1"), "l2") == "duplicate"
    assert book.record(CANARY, scored(v1_answer("r", [0], "2"), "2"), "l3") == "recorded"
    other = Arm("other", "stable", "1")
    assert book.record(other, scored(v1_answer("r", [0]), "1"), "l4") == "conflict"
    _, item = book.lookup("r")
    assert item is not None
    assert {r: p.label_index for r, p in item.predictions.items()} == {"stable": 1, "canary": 0}
    assert item.links == {"stable": "l1", "canary": "l3"}


def test_with_a_key_only_ids_the_platform_signed_for_that_arm_are_recorded() -> None:
    now = [1_000_000.0]
    book = JoinBook(IdIssuer(KEY, ROUTER_ORIGIN, clock=lambda: now[0]), ttl_s=60)
    canary_id = IdIssuer(KEY, "canary", clock=lambda: now[0]).issue()
    forged = IdIssuer(b"someone-elses-key-0123456789", "canary").issue()
    assert book.record(STABLE, scored(v1_answer("made-up", [1]), "1"), None) == "not_issued"
    assert book.record(CANARY, scored(v1_answer(forged, [1]), "2"), None) == "not_issued"
    assert book.record(STABLE, scored(v1_answer(canary_id, [1]), "1"), None) == "wrong_arm"
    assert book.record(CANARY, scored(v1_answer(canary_id, [1]), "2"), None) == "recorded"
    router_id = IdIssuer(KEY, ROUTER_ORIGIN, clock=lambda: now[0]).issue()
    assert book.record(STABLE, scored(v1_answer(router_id, [1]), "1"), None) == "recorded"
    assert book.id_verdict(canary_id) is None
    now[0] += 61
    assert book.id_verdict(canary_id) == "expired"
    assert len(book.items) == 2


def test_labels_resolve_by_index_digits_or_a_seen_class_name_only() -> None:
    book = JoinBook()
    book.record(STABLE, scored(v1_answer("r", [1]), "1"), None)
    resolve = book.classes.resolve
    assert [resolve("demo", v) for v in (0, 1, "1", "negative", "positive")] == [0, 1, 1, 0, 1]
    for bad in (2, -1, True, "2", "²", "١", "", "neutral", None, 1.0):
        assert resolve("demo", bad) is None, bad
    assert resolve("unknown-deployment", 0) is None


def test_a_label_counts_each_arm_and_the_pair() -> None:
    book = JoinBook()
    book.record(STABLE, scored(v1_answer("r", [1]), "1"), None)
    book.record(CANARY, scored(v1_answer("r", [0], "2"), "2"), None)
    _, item = book.lookup("r")
    assert item is not None
    counted = book.count(item, 1)
    assert counted.arms == (("canary", "2", False), ("stable", "1", True))
    assert counted.pairs == (("1", "2", "stable_only"),)


def test_pairing_is_planned_only_with_arms_an_input_and_a_missing_arm(tmp_path: Path) -> None:
    book = JoinBook()
    book.record_input("link", StoredInput("", b'{"instances": ["x"]}', {}, "v1"))
    book.record_input("link", StoredInput("", b'{"instances": ["swapped"]}', {}, "v1"))
    book.record(STABLE, scored(v1_answer("r", [1]), "1"), "link")
    _, item = book.lookup("r")
    assert item is not None
    arms = parse_arms({"deployments": {"demo": {"model": "m", "arms": {
        "stable": "http://s/", "canary": {"url": "http://c", "version": "2"}}}}})  # fmt: skip
    chosen = plan(book, item, arms["demo"])
    assert (chosen.role, chosen.url, chosen.version) == (
        "canary",
        "http://c/v1/models/m:predict",
        "2",
    )
    assert plan(book, item, None).skip == "no_arms"
    book.inputs.pop("link")
    assert plan(book, item, arms["demo"]).skip == "no_input"
    item.predictions["canary"] = item.predictions["stable"]
    assert plan(book, item, arms["demo"]).skip == "not_needed"
    # The file is re-read when it changes; a broken one keeps the last good content.
    path = tmp_path / "arms.json"
    path.write_text(json.dumps({"deployments": {"demo": {"arms": {"stable": "http://s"}}}}))
    watched = ArmsFile(path)
    assert watched.get("demo") is not None and watched.get("demo").model == "demo"  # type: ignore[union-attr]
    path.write_text("{not json")

    os.utime(path, (1, 1))
    assert watched.get("demo") is not None and watched.error
    with pytest.raises(ValueError):
        parse_arms({"deployments": {"demo": {"arms": {"stable": "file:///etc/passwd"}}}})


def test_an_event_flood_stays_inside_the_byte_bounds() -> None:
    book = JoinBook(capacity=1_000_000, max_bytes=256 * 1024, input_bytes=128 * 1024)
    body = b'{"instances": ["' + b"x" * 200 + b'"]}'
    for i in range(20_000):
        book.record_input(f"pod\x1f{i}", StoredInput("", body, {}, "v1"))
        book.record(STABLE, scored(v1_answer(f"id-{i}", [i % 2]), "1"), f"pod\x1f{i}")
    assert book.items.estimated_bytes <= 256 * 1024
    assert book.inputs.bytes <= 128 * 1024
    assert 0 < len(book.items) < 20_000 and book.lookup("id-19999")[0] == "found"
    assert book.lookup("id-0")[0] != "found"  # pushed out (its tombstone too, by now)
