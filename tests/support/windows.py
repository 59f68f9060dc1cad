"""``MetricsWindows`` whose reads return observations a test sets (no provider, no scrape).

Reconcile tests that are about decisions, not about metrics, use it in ``Deps.windows``;
``tests/unit/operator/test_observer.py`` tests the real windows against fake providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.api.status import Status
from modeldeploy.operator.observer import MetricsWindows, Reading
from modeldeploy.operator.platforms.base import Target


class FixedWindows(MetricsWindows):
    """Every read returns ``observations`` (None: no data), and is counted."""

    def __init__(self, observations: Observations | None = None) -> None:
        super().__init__(self._no_provider)
        self.observations = observations
        self.reads = 0

    @staticmethod
    def _no_provider(target: Target) -> Any:
        raise AssertionError("FixedWindows never asks a provider")

    def read(self, target: Target, status: Status, baseline: Mapping[str, Any] | None) -> Reading:
        self.reads += 1
        if self.observations is None:
            return Reading(problem="no metrics for this window yet")
        return Reading(self.observations)

    def baseline_after(
        self,
        target: Target,
        after: Status,
        old: Mapping[str, Any] | None,
        taken: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        return None
