"""A platform that serves nothing and records what it was asked (for tests and dry runs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modeldeploy.operator.api.status import ArmHealth, VersionRef
from modeldeploy.operator.platforms.base import Target


@dataclass
class NopPlatform:
    """Keeps the wanted state in memory; always ready."""

    stable: dict[str, VersionRef] = field(default_factory=dict)
    canary: dict[str, VersionRef | None] = field(default_factory=dict)
    weight: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def _key(self, target: Target) -> str:
        return f"{target.namespace}/{target.name}"

    def ensure(self, target: Target, stable: VersionRef) -> None:
        key = self._key(target)
        self.calls.append(("ensure", stable.version))
        self.stable[key], self.canary[key], self.weight[key] = stable, None, 0

    def set_canary(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        key = self._key(target)
        self.calls.append(("set_canary", f"{canary.version}@{weight}"))
        self.stable[key], self.canary[key], self.weight[key] = stable, canary, weight

    def set_traffic(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        self.calls.append(("set_traffic", str(weight)))
        self.weight[self._key(target)] = weight

    def read_traffic(self, target: Target) -> int | None:
        key = self._key(target)
        return self.weight.get(key) if self.canary.get(key) else None

    def reassert_traffic(self, target: Target, weight: int) -> int | None:
        """Nothing serves, so nothing can drift."""
        return None

    def is_ready(self, target: Target) -> bool:
        return True

    def health(self, target: Target) -> Mapping[str, ArmHealth]:
        """Every arm it was asked to serve is ready (nothing can die here)."""
        key = self._key(target)
        arms = {"stable": ArmHealth(True)} if key in self.stable else {}
        if self.canary.get(key) is not None:
            arms["canary"] = ArmHealth(True)
        return arms

    def promote(self, target: Target, ref: VersionRef) -> None:
        self.calls.append(("promote", ref.version))
        self.ensure(target, ref)
        self.calls.pop()

    def metrics_endpoints(self, target: Target) -> list[str]:
        """Nothing is served, so there is nothing to scrape."""
        return []

    def clean_up(self, target: Target) -> None:
        key = self._key(target)
        self.calls.append(("clean_up", key))
        for table in (self.stable, self.canary, self.weight):
            table.pop(key, None)
