"""A version's Triton repository through a real MLflow server into a real tritonserver."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.registry import manifest as manifests
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from modeldeploy.registry.storage import open_store
from modeldeploy.registry.triton import (
    TAG_TRITON_ARTIFACT,
    TAG_TRITON_MANIFEST,
    TAG_TRITON_URI,
    fetch_triton,
    triton_uri,
)
from modeldeploy.serving.triton import TritonServer, classify
from modeldeploy.serving.triton.backend_model import registry_version

pytestmark = pytest.mark.slow


def test_published_repository_is_what_triton_serves_for_the_registry_version(
    registry: MlflowRegistry, tiny_checkpoint: Path, model_name: str, tmp_path: Path
) -> None:
    base = "pvc://models/triton"
    claim = tmp_path / "claim"  # the PVC "models", as mounted where publishing runs
    claim.mkdir()
    info = publish_checkpoint(
        registry,
        tiny_checkpoint,
        model_name,
        triton_base_uri=base,
        triton_store=lambda uri: open_store(uri, mounts={"models": claim}),
    )
    tags = registry.get_version(model_name, info.version).tags
    assert tags[TAG_TRITON_URI] == triton_uri(base, model_name, info.version)
    assert tags[TAG_TRITON_ARTIFACT].endswith("/triton")

    repository = fetch_triton(registry, model_name, info.version, tmp_path / "synced")
    manifests.verify(repository, manifests.from_json(tags[TAG_TRITON_MANIFEST]))
    # What KServe mounts for pvc://models/<path> is <claim>/<path>: the same files.
    uploaded = claim / "triton" / model_name / info.version / "triton"
    manifests.verify(uploaded, manifests.from_json(tags[TAG_TRITON_MANIFEST]))
    with TritonServer(repository) as triton:
        triton.load(model_name)
        result = classify(triton.http_url, model_name, ["a fine film", "dull"])
    assert result.model_version == "1"  # every published version; the unit names the registry's
    assert registry_version(repository / model_name / "1", "1") == info.version
    assert len(result.labels) == 2
