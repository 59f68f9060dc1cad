"""One registry contract, run against a real ``mlflow server`` through both clients (the
MLflow client, and the REST client the operator uses) and against the in-memory fake:
what the operator relies on (``registry_port`` and ``modeldeploy.registry.decisions``)
behaves the same on all three, so tests that use the fake say something about MLflow too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modeldeploy.operator import registry_port
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.registry.base import TAG_OUTCOME, NotFound, RegistryClient

# The fake's import, in one line (it moves to tests/support at the merge).
from tests.support.in_memory_registry import InMemoryRegistry

NewVersion = Callable[[str], str]  # model name -> the new version's number


@pytest.fixture(
    params=[
        "memory",
        pytest.param("mlflow", marks=pytest.mark.slow),
        pytest.param("rest", marks=pytest.mark.slow),
    ]
)
def registry(request, tmp_path: Path) -> Iterator[tuple[RegistryClient, NewVersion]]:
    files = tmp_path / "files"
    files.mkdir()
    (files / "weights.bin").write_bytes(b"\x00" * 16)
    if request.param == "memory":
        client: RegistryClient = InMemoryRegistry(tmp_path / "store")
    elif request.param == "mlflow":
        from modeldeploy.registry.mlflow_client import MlflowRegistry

        client = MlflowRegistry(request.getfixturevalue("mlflow_server").url)
    else:
        from modeldeploy.registry.rest_client import RestRegistry

        client = RestRegistry(request.getfixturevalue("mlflow_server").url)

    def new_version(model: str) -> str:
        return client.create_version(model, files, tags={"kind": "test"}).version

    yield client, new_version


def _model() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}"


def _spec(model: str):
    return parse_spec({"model": {"name": model}})


def test_satisfies_the_protocol(registry) -> None:
    client, _ = registry
    assert isinstance(client, RegistryClient)
    assert client.is_online() is True


def test_versions_are_numbered_and_keep_their_tags(registry) -> None:
    client, new_version = registry
    model = _model()
    first, second = new_version(model), new_version(model)
    assert int(second) == int(first) + 1
    info = client.get_version(model, second)
    assert (info.name, info.version, info.tags.get("kind")) == (model, second, "test")
    client.set_version_tag(model, first, "note", "hello")
    assert client.get_version(model, first).tags["note"] == "hello"


def test_unknown_models_and_versions_are_not_found(registry) -> None:
    client, new_version = registry
    with pytest.raises(NotFound):
        client.get_model(_model())
    model = _model()
    new_version(model)
    with pytest.raises(NotFound):
        client.get_version(model, "999")


def test_aliases_move_and_disappear(registry) -> None:
    client, new_version = registry
    model = _model()
    v1, v2 = new_version(model), new_version(model)
    client.set_alias(model, "champion", v1)
    assert client.get_model(model).aliases == {"champion": v1}
    client.set_alias(model, "champion", v2)
    client.set_alias(model, "challenger", v1)
    assert client.get_model(model).aliases == {"champion": v2, "challenger": v1}
    client.delete_alias(model, "challenger")
    assert client.get_model(model).aliases == {"champion": v2}


def test_search_returns_every_version(registry) -> None:
    client, new_version = registry
    model = _model()
    made = {new_version(model) for _ in range(3)}
    found, token = client.search_versions(model, max_results=10)
    assert {v.version for v in found} == made and token is None


def test_search_pages_newest_first(registry) -> None:
    client, new_version = registry
    model = _model()
    made = [new_version(model) for _ in range(3)]
    first, token = client.search_versions(model, max_results=2)
    assert [v.version for v in first] == made[::-1][:2] and token
    rest, last = client.search_versions(model, max_results=2, page_token=token)
    assert [v.version for v in rest] == made[:1] and last is None


def test_the_listing_carries_each_models_aliases(registry) -> None:
    client, new_version = registry
    model = _model()
    v1 = new_version(model)
    client.set_alias(model, "champion", v1)
    listed = {m.name: m for m in client.list_models()}
    assert listed[model].aliases == {"champion": v1}


def test_the_operator_reads_the_aliases_it_needs(registry) -> None:
    client, new_version = registry
    model = _model()
    assert registry_port.read_state(client, _spec(model)).stable is None  # no model yet
    v1, v2 = new_version(model), new_version(model)
    client.set_alias(model, "champion", v1)
    client.set_alias(model, "challenger", v2)
    state = registry_port.read_state(client, _spec(model))
    assert state.available and state.stable is not None and state.candidate is not None
    assert (state.stable.version, state.candidate.version) == (v1, v2)


def test_promotion_and_rejection_are_recorded_the_same_way(registry) -> None:
    client, new_version = registry
    model = _model()
    spec = _spec(model)
    v1, v2, v3 = new_version(model), new_version(model), new_version(model)
    client.set_alias(model, "champion", v1)
    client.set_alias(model, "challenger", v2)
    registry_port.promote(client, spec, v2, "all checks passed")
    registry_port.promote(client, spec, v2, "all checks passed")  # a repeated tick: no-op
    aliases = client.get_model(model).aliases
    assert aliases.get("champion") == v2 and "challenger" not in aliases
    client.set_alias(model, "challenger", v3)
    registry_port.reject(client, spec, v3, "accuracy dropped")
    assert client.get_model(model).aliases.get("champion") == v2
    assert client.get_version(model, v3).tags.get(TAG_OUTCOME)
    assert client.get_version(model, v2).tags.get(TAG_OUTCOME)
