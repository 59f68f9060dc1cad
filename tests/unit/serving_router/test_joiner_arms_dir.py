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
    found = arms.get("demo")
    assert found is not None and found.urls == {"stable": "http://s", "canary": "http://c"}
    assert found.versions == {"stable": "1", "canary": "2"} and arms.error == ""
    (tmp_path / arms_key("other", "demo")).write_text(entry)  # same name, other namespace
    assert arms.get("demo") is None and "named by two files" in arms.error
    (tmp_path / arms_key("other", "demo")).unlink()
    assert arms.get("demo") is not None and arms.error == ""
    (tmp_path / arms_key("ml", "demo")).unlink()  # the rollout ended
    assert arms.get("demo") is None


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
