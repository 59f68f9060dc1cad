"""What the canary analysis may tolerate, and how sure it must be.

The configuration is the resource's ``spec.rollout.analysis`` section, declared once in
``modeldeploy.operator.api.analysis`` (the analysis layer sits above the API layer, so the
model lives there). Every knob is explained in docs/statistics.md; the defaults are the ones
the simulation benchmark (``modeldeploy.tools.bench.simulation``) measures.
"""

from __future__ import annotations

from modeldeploy.operator.api.analysis import (
    CHECKS,
    AnalysisConfig,
    CheckName,
    OnInconclusive,
    PairedMode,
)

__all__ = ["CHECKS", "AnalysisConfig", "CheckName", "OnInconclusive", "PairedMode"]
