"""The pydantic -> Kubernetes structural schema converter, on small models and on the spec."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from modeldeploy.operator.api.schema import SPEC
from modeldeploy.operator.api.structural import UnsupportedSchema, structural_schema


class Inner(BaseModel):
    """The inner section."""

    model_config = ConfigDict(extra="forbid")
    level: int = Field(default=3, ge=1, le=9, description="A bounded integer.")


class Outer(BaseModel):
    """The outer section."""

    model_config = ConfigDict(extra="forbid")
    inner: Inner = Field(default_factory=Inner, description="Overrides the class docstring.")
    share: float = Field(default=0.5, gt=0.0, lt=1.0, description="Exclusive both ends.")
    cap: float | None = Field(default=None, gt=0.0, description="Optional, unset by default.")
    mode: Literal["a", "b"] = Field(default="a", description="An enum.")
    name: str = Field(pattern=r"^[a-z]+$", max_length=10, description="Required, patterned.")
    labels: dict[str, str] = Field(default_factory=dict, description="A string map.")
    tags: tuple[str, ...] = Field(default=(), description="A list.")


def test_refs_are_inlined_and_the_field_description_wins() -> None:
    inner = structural_schema(Outer)["properties"]["inner"]
    assert inner["type"] == "object"
    assert inner["description"] == "Overrides the class docstring."
    assert inner["properties"]["level"] == {
        "type": "integer",
        "description": "A bounded integer.",
        "default": 3,
        "minimum": 1,
        "maximum": 9,
    }


def test_exclusive_bounds_use_openapi_v3_booleans() -> None:
    share = structural_schema(Outer)["properties"]["share"]
    assert (share["minimum"], share["exclusiveMinimum"]) == (0.0, True)
    assert (share["maximum"], share["exclusiveMaximum"]) == (1.0, True)


def test_an_optional_is_its_type_without_anyof_or_a_null_default() -> None:
    cap = structural_schema(Outer)["properties"]["cap"]
    assert cap == {
        "type": "number",
        "description": "Optional, unset by default.",
        "minimum": 0.0,
        "exclusiveMinimum": True,
    }


def test_enum_pattern_required_map_and_list_are_kept() -> None:
    schema = structural_schema(Outer)
    props = schema["properties"]
    assert props["mode"]["enum"] == ["a", "b"] and props["mode"]["default"] == "a"
    assert props["name"]["pattern"] == "^[a-z]+$" and props["name"]["maxLength"] == 10
    assert schema["required"] == ["name"]
    assert props["labels"]["additionalProperties"] == {"type": "string"}
    assert props["tags"] == {
        "type": "array",
        "description": "A list.",
        "default": [],
        "items": {"type": "string"},
    }
    assert "additionalProperties" not in schema and "title" not in schema
    assert schema["description"] == "The outer section."


class Either(BaseModel):
    value: int | str = Field(default=0, description="Two real types.")


class Unique(BaseModel):
    values: frozenset[int] = Field(default=frozenset(), description="A set: uniqueItems.")


@pytest.mark.parametrize(("model", "why"), [(Either, "unions"), (Unique, "uniqueItems")])
def test_what_a_structural_schema_cannot_say_is_refused(model: type[BaseModel], why: str) -> None:
    with pytest.raises(UnsupportedSchema, match=why):
        structural_schema(model)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for sub in node.get("properties", {}).values():
        yield from _nodes(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _nodes(node[key])


def test_the_generated_spec_schema_is_structural() -> None:
    for node in _nodes(SPEC):
        assert "type" in node
        assert not {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "uniqueItems"} & set(node)
        assert not ("properties" in node and "additionalProperties" in node)
        assert node.get("default", 0) is not None
