"""docs/modeldeployment.md's field table: every model field is in it, and nothing else."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from modeldeploy.operator.api.fieldref import BEGIN, END, with_table
from modeldeploy.operator.api.spec import ModelDeploymentSpec

DOC = Path(__file__).resolve().parents[3] / "docs" / "modeldeployment.md"


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The model a field holds, directly, in a tuple, or as ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (tuple, types.UnionType, typing.Union):
        for arg in typing.get_args(annotation):
            if (found := _model_in(arg)) is not None:
                return found
    return None


def _model_paths(model: type[BaseModel], prefix: str = "spec") -> Iterator[str]:
    """Dotted YAML paths of every field, walked from the models (not from the CRD)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}"
        yield path
        inner = _model_in(info.annotation)
        if inner is not None:
            is_list = typing.get_origin(info.annotation) is tuple
            yield from _model_paths(inner, path + ("[]" if is_list else ""))


def _doc_paths() -> list[str]:
    text = DOC.read_text()
    table = text[text.index(BEGIN) : text.index(END)]
    return re.findall(r"^\| `(spec[^`]*)` \|", table, flags=re.MULTILINE)


def test_the_doc_table_is_the_generated_one() -> None:
    assert DOC.read_text() == with_table(DOC.read_text()), (
        "docs/modeldeployment.md's field table is stale: run"
        " `python -m modeldeploy.operator.api.fieldref --write docs/modeldeployment.md`"
    )


def test_every_model_field_is_in_the_doc_table_and_vice_versa() -> None:
    documented, declared = _doc_paths(), list(_model_paths(ModelDeploymentSpec))
    assert len(documented) == len(set(documented))
    assert set(documented) == set(declared)
    assert "spec.rollout.analysis.onInconclusive" in documented
    assert "spec.resources.tolerations[].tolerationSeconds" in documented
