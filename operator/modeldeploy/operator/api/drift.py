"""``spec.rollout.analysis.drift``: label-free checks of the canary against stable.

Labels arrive late or never; the serving processes count, per arm and without labels, what
the model predicted, how sure it was, how long its inputs were and how many it truncated
(docs/metrics.md). Each signal here compares the canary with stable on the same window with
an always-valid bound, judged by the same threshold rule as the other checks
(docs/statistics.md, "Drift"). Each is off until enabled: a better model is *meant* to
predict differently, so how much difference is tolerable is the owner's call.

An enabled signal gates like any check: it rolls back when its bound proves the shift is
beyond ``max_shift``, passes when it proves it is below, and holds the step otherwise. The
defaults keep false rollbacks of an identical model far below 1% (the ``drift`` benchmark
measures it), because a rollback needs the bound, not the estimate, beyond ``max_shift``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic.config import JsonDict

from modeldeploy.operator.api.base import SpecModel

_ENABLED = "Let this signal hold or roll back the rollout (off: not evaluated)."
_NESTED: JsonDict = {"default": {}}


class ShiftSignal(SpecModel):
    """A two-sided shift in a share: the most any category's share moved, in either way."""

    enabled: bool = Field(default=False, description=_ENABLED)
    max_shift: float = Field(
        default=0.02,
        gt=0.0,
        lt=1.0,
        description="The largest shift allowed in any category's share, absolute (0.02 = 2"
        " points); the canary fails when the bound proves a larger one.",
    )


class WideShiftSignal(ShiftSignal):
    """A shift over many buckets (confidence, length): each bucket's share is noisier."""

    max_shift: float = Field(
        default=0.05,
        gt=0.0,
        lt=1.0,
        description="The largest shift allowed in any bucket's share, absolute (0.05 = 5"
        " points); the canary fails when the bound proves a larger one.",
    )


class TruncationSignal(SpecModel):
    """The truncation rate may not rise by more than ``max_increase``."""

    enabled: bool = Field(default=False, description=_ENABLED)
    max_increase: float = Field(
        default=0.01,
        gt=0.0,
        lt=1.0,
        description="How much higher the canary's share of truncated inputs may be, absolute"
        " (0.01 = 1 point).",
    )


class AgreementSignal(SpecModel):
    """Inputs both arms scored: the share where the predicted classes differ."""

    enabled: bool = Field(default=False, description=_ENABLED)
    max_disagreement: float = Field(
        default=0.15,
        gt=0.0,
        lt=1.0,
        description="The largest share of paired inputs on which canary and stable may"
        " predict different classes (0.15 = 15%). A better model disagrees where stable is"
        " wrong, so leave room for its gain.",
    )


class DriftConfig(SpecModel):
    """Label-free evidence: each signal has a switch and a limit (all off by default)."""

    predictions: ShiftSignal = Field(
        default_factory=ShiftSignal,
        description="Prediction mix: the share of each class.",
        json_schema_extra=_NESTED,
    )
    confidence: WideShiftSignal = Field(
        default_factory=WideShiftSignal,
        description="Top-class probability: the share in each confidence bucket.",
        json_schema_extra=_NESTED,
    )
    input_tokens: WideShiftSignal = Field(
        default_factory=WideShiftSignal,
        description="Input length in tokens: the share in each length bucket (a changed"
        " tokenizer or maximum length shows here).",
        json_schema_extra=_NESTED,
    )
    truncation: TruncationSignal = Field(
        default_factory=TruncationSignal,
        description="The share of inputs truncated to the model's maximum length.",
        json_schema_extra=_NESTED,
    )
    agreement: AgreementSignal = Field(
        default_factory=AgreementSignal,
        description="Paired inputs (scored by both arms): the share of different answers.",
        json_schema_extra=_NESTED,
    )
    min_requests: int = Field(
        default=200,
        ge=20,
        le=100_000_000,
        description="Requests (pairs, for agreement) per arm before a drift signal is judged.",
    )
    mixture_scale: float = Field(
        default=0.03,
        ge=0.001,
        le=1.0,
        description="The shift the sequential mixture test detects fastest; tuning only,"
        " not a limit.",
    )

    @property
    def enabled(self) -> tuple[str, ...]:
        """The enabled signals, in a fixed order."""
        signals = (
            ("predictions", self.predictions.enabled),
            ("confidence", self.confidence.enabled),
            ("input_tokens", self.input_tokens.enabled),
            ("truncation", self.truncation.enabled),
            ("agreement", self.agreement.enabled),
        )
        return tuple(name for name, on in signals if on)
