"""Pick a platform by name (the operator's setting), so handlers never import one directly."""

from __future__ import annotations

from typing import Any

from modeldeploy.operator.platforms.base import Platform


def make_platform(name: str, **kwargs: Any) -> Platform:
    if name == "kserve":
        from modeldeploy.operator.platforms.kserve import KServePlatform

        return KServePlatform(kwargs["api"])
    if name == "nop":
        from modeldeploy.operator.platforms.nop import NopPlatform

        return NopPlatform()
    raise ValueError(f"unknown platform {name!r}: kserve or nop")
