"""``modeldeploy registry publish --golden-set`` and ``registry golden-set`` on a real MLflow:
the set is stored with the version and read back verified; a bad one is refused by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldeploy.registry import golden
from modeldeploy.registry.mlflow_client import MlflowRegistry
from tests.integration.registry.test_cli import run

pytestmark = pytest.mark.slow


def jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_publish_with_a_golden_set_and_attach_one_later(
    mlflow_server, tiny_checkpoint: Path, model_name: str, tmp_path: Path, capsys
) -> None:
    uri = ["--registry-uri", mlflow_server.url]
    rows: list[dict[str, object]] = [{"text": "great", "label": 1},
                                     {"text": "dull", "label": "negative"}]  # fmt: skip
    first = jsonl(tmp_path / "a.jsonl", rows)
    code, out, _ = run(
        ["registry", "publish", str(tiny_checkpoint), "--model", model_name,
         "--golden-set", str(first), *uri],
        capsys,
    )  # fmt: skip
    assert code == 0 and "golden set of 2 examples" in out, out
    client = MlflowRegistry(mlflow_server.url)
    examples = golden.read_golden(client, model_name, "1")
    assert examples.texts == ("great", "dull") and examples.labels == (1, "negative")

    # A version's set never changes (a prober mid-rollout would count both sets' examples).
    second = jsonl(tmp_path / "b.jsonl", [{"text": "superb", "label": "positive"}])
    code, out, _ = run(["registry", "golden-set", model_name, "1", str(second), *uri], capsys)
    assert code == 1 and "already has a golden set" in out, out

    # Attached later to a version published without one; a label outside the model's
    # classes is refused naming the line, and nothing is attached.
    code, out, _ = run(
        ["registry", "publish", str(tiny_checkpoint), "--model", model_name, *uri], capsys
    )
    assert code == 0, out
    bad = jsonl(tmp_path / "bad.jsonl", [{"text": "fine", "label": 1}, {"text": "x", "label": 9}])
    code, out, _ = run(["registry", "golden-set", model_name, "2", str(bad), *uri], capsys)
    assert code == 1 and "bad.jsonl:2" in out and "not one of the model's classes" in out, out
    assert golden.golden_ref(client.get_version(model_name, "2").tags) is None
    code, out, _ = run(["registry", "golden-set", model_name, "2", str(second), *uri], capsys)
    assert code == 0 and "golden set of 1 examples" in out, out
    assert golden.read_golden(client, model_name, "2").texts == ("superb",)
