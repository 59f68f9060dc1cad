"""The joiner reads the mounted arms ConfigMap as a directory: every key a file, merged, a
deployment named twice left unpaired, changes seen on the next label."""

from __future__ import annotations

import json
from pathlib import Path

from modeldeploy.serving.contract.joiner import arms_entry, arms_key
from modeldeploy.serving.joiner.pairing import ArmsFile, answered_versions


def test_every_key_is_read_and_a_deployment_named_twice_is_not_paired(tmp_path: Path) -> None:
    (tmp_path / "arms.json").write_text(json.dumps({"deployments": {}}))
    (tmp_path / "..data").mkdir()  # the kubelet's machinery: ignored
    entry = arms_entry("demo", "m", {"stable": ("http://s", "1"), "canary": ("http://c", "2")})
    (tmp_path / arms_key("ml", "demo")).write_text(entry)
    arms = ArmsFile(tmp_path)
    found = arms.get("demo", "ml")
    assert found is not None and found.urls == {"stable": "http://s", "canary": "http://c"}
    assert found.versions == {"stable": "1", "canary": "2"} and arms.error == ""
    assert arms.get("demo") is found  # an event without a namespace: the only "demo"
    # A hand-filled entry (no namespace in its file name) holds for every namespace; the
    # namespace's own entry wins over it.
    (tmp_path / "team.json").write_text(entry.replace("http://c", "http://team-c"))
    own, shared = arms.get("demo", "ml"), arms.get("demo", "other")
    assert own is not None and own.urls["canary"] == "http://c"
    assert shared is not None and shared.urls["canary"] == "http://team-c"
    # One namespace and name in two files: ambiguous, not paired, and said.
    (tmp_path / "ml.demo.copy.json").write_text(entry)  # not the key of "demo": every namespace
    assert arms.get("demo", "other") is None and "named by two files" in arms.error
    for name in ("ml.demo.copy.json", "team.json"):
        (tmp_path / name).unlink()
    assert arms.get("demo", "ml") is not None and arms.error == ""
    (tmp_path / arms_key("ml", "demo")).unlink()  # the rollout ended
    assert arms.get("demo", "ml") is None


def test_same_named_deployments_of_two_namespaces_are_both_paired(tmp_path: Path) -> None:
    """Each operator writes ``<namespace>.<name>.json``: two namespaces, one name, two arms."""
    ml = arms_entry("demo", "m", {"stable": ("http://ml-s", "1"), "canary": ("http://ml-c", "2")})
    qa = arms_entry("demo", "m", {"stable": ("http://qa-s", "5"), "canary": ("http://qa-c", "6")})
    (tmp_path / arms_key("ml", "demo")).write_text(ml)
    (tmp_path / arms_key("qa", "demo")).write_text(qa)
    (tmp_path / arms_key("ml", "demo.v2")).write_text(
        arms_entry("demo.v2", "m", {"stable": ("http://dotted", "1")})
    )  # a name with dots: the namespace ends at the first one
    arms = ArmsFile(tmp_path)
    ml_arms, qa_arms = arms.get("demo", "ml"), arms.get("demo", "qa")
    assert ml_arms is not None and ml_arms.urls["canary"] == "http://ml-c"
    assert qa_arms is not None and qa_arms.versions["canary"] == "6"
    assert arms.error == ""
    assert arms.get("demo", "dev") is None  # no entry of that namespace
    assert arms.get("demo") is None  # no namespace, two candidates: ambiguous, not guessed
    dotted = arms.get("demo.v2", "ml")
    assert dotted is not None and dotted.urls == {"stable": "http://dotted"}


def test_a_bad_key_keeps_the_last_good_arms(tmp_path: Path) -> None:
    entry = arms_entry("demo", "m", {"stable": ("http://s", "1"), "canary": ("http://c", "2")})
    (tmp_path / "ml.demo.json").write_text(entry)
    arms = ArmsFile(tmp_path)
    assert arms.get("demo") is not None
    (tmp_path / "x.json").write_text("{not json")
    assert arms.get("demo") is not None and "x.json" in arms.error


def test_an_answer_from_another_version_is_recognised() -> None:
    def v1(version: str) -> bytes:
        item = {"id": "r", "label": "positive", "label_index": 1}
        return json.dumps({"predictions": [item], "model_version": version}).encode()

    assert answered_versions(v1("2")) == {"2"}
    assert answered_versions(v1("")) == set()
    triton = {"id": "r", "model_version": "1", "outputs": [{"name": "LABEL", "data": ["x"]}]}
    assert answered_versions(json.dumps(triton).encode()) == set()  # Triton's own numbering
    assert answered_versions(b"not json") == set()


def test_an_event_is_paired_on_the_arms_of_its_own_namespace(tmp_path: Path) -> None:
    """Two ModelDeployments named ``demo`` in ``ml`` and ``qa``: a stable-only label in each
    plans its re-score on its own namespace's canary (the event's ``Ce-Namespace``)."""
    from modeldeploy.serving.contract.cloudevents import Agent
    from modeldeploy.serving.contract.joiner import logger_url
    from modeldeploy.serving.joiner.app import Joiner, JoinerConfig
    from modeldeploy.serving.joiner.book import JoinBook
    from modeldeploy.serving.joiner.pairing import plan

    for namespace in ("ml", "qa"):
        entry = arms_entry("demo", "demo", {"stable": (f"http://{namespace}-s", "1"),
                                            "canary": (f"http://{namespace}-c", "2")})  # fmt: skip
        (tmp_path / arms_key(namespace, "demo")).write_text(entry)
    joiner = Joiner(JoinerConfig(None, JoinBook(None), ArmsFile(tmp_path)))
    query = logger_url("", "demo", "stable", "1").split("?", 1)[1]
    for namespace in ("ml", "qa"):
        request = json.dumps({"instances": ["good"]}).encode()
        answer = json.dumps({"predictions": [{"label": "positive", "label_index": 1}],
                             "request_id": f"r-{namespace}"}).encode()  # fmt: skip
        events = Agent(f"pod-{namespace}", namespace=namespace).events(request, answer)
        outcomes = [joiner._ingest(query, headers, body) for headers, body in events]
        assert outcomes == ["input", "recorded"]
    for namespace in ("ml", "qa"):
        _, item = joiner.book.lookup(f"r-{namespace}")
        assert item is not None and item.namespace == namespace
        chosen = plan(joiner.book, item, joiner.config.arms.get(item.deployment, item.namespace))
        assert chosen.skip == "" and chosen.url == f"http://{namespace}-c/v1/models/demo:predict"
