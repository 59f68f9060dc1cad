"""The base of every spec model: camelCase in YAML, snake_case in Python, frozen, strict keys.

One configuration for all sections, so the CRD (generated from these models), the parser
and the Python code can never disagree on a spelling: the YAML/JSON name of a field is the
camelCase of its Python name, unknown keys are an error (a typo must not silently fall back
to a default), and a parsed spec is immutable because it is passed around, never changed.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """A section of the ModelDeployment spec."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    def replaced(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` (Python names); bounds apply as on parsing."""
        return self.model_validate({**self.model_dump(), **changes})
