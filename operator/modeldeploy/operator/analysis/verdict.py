"""Check results, verdicts, and the one threshold rule every check uses.

Every check reduces its data to a confidence interval ``[lower, upper]`` for a *harm*
(how much worse the canary is: an accuracy drop, an error-rate rise, a log latency
ratio, an absolute P99) and a limit on that harm. ``judge`` is the only place that
compares the two, so the three checks cannot drift apart:

* ``fail`` when even the optimistic end of the interval is at or beyond the limit;
* ``pass`` when even the pessimistic end is below it (non-inferiority shown);
* ``undecided`` otherwise: enough data to judge, not enough to be sure either way.

A fourth status, ``inconclusive``, is for missing or too little data (checks set it
themselves before judging) and for an interval with a NaN end (``judge`` returns it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

# Comparisons tolerate float noise: histogram bounds such as 0.005 * 1.1**k
# multiplied by (1 + 0.1) must compare equal to the next bound.
_EPS = 1e-9


class CheckStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNDECIDED = "undecided"
    INCONCLUSIVE = "inconclusive"


class Outcome(StrEnum):
    """What the checks say together. What the rollout does about it is the machine's call."""

    PASS = "pass"  # every check proved non-inferiority
    FAIL = "fail"  # some check's always-valid bound crossed its limit
    PENDING = "pending"  # not yet: more data may still decide either way


def distinct(value: float, limit: float, *, signed: bool = True) -> tuple[str, str]:
    """Format a bound and the limit it is compared with so they never print equal.

    A reason such as "bound -0.030 below margin -0.030" reads as a contradiction; with
    one more digit where needed it reads "bound -0.0304 below margin -0.0300".
    """
    sign = "+" if signed else ""
    a = b = ""
    for digits in (3, 4, 5, 6):
        a, b = format(value, f"{sign}.{digits}f"), format(limit, f"{sign}.{digits}f")
        if a != b:
            break
    return a, b


def crossed(
    lower: npt.ArrayLike, upper: npt.ArrayLike, limit: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised threshold rule: (failed, passed) for harm intervals against a limit.

    The simulation benchmark calls this on arrays of thousands of rollouts; ``judge``
    calls it on one interval. Same code, same rule.
    """
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    lim = np.asarray(limit, dtype=float)
    slack = _EPS * np.maximum(1.0, np.abs(np.where(np.isfinite(lim), lim, 0.0)))
    failed = lo >= lim - slack
    passed = (hi < lim - slack) & ~failed
    return failed, passed


def judge(lower: float, upper: float, limit: float) -> CheckStatus:
    """The threshold rule for one harm interval (see the module docstring).

    An interval with a NaN end says nothing: inconclusive, so it can never count as
    "no regression found" at a deadline.
    """
    if any(math.isnan(float(v)) for v in (lower, upper, limit)):
        return CheckStatus.INCONCLUSIVE
    failed, passed = crossed(lower, upper, limit)
    if bool(failed):
        return CheckStatus.FAIL
    if bool(passed):
        return CheckStatus.PASS
    return CheckStatus.UNDECIDED


def _jsonable(value: Any) -> Any:
    """Numbers for a Kubernetes status: finite floats rounded, infinities as strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "+Inf" if v > 0 else "-Inf"
        return round(v, 6)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome, the numbers behind it, and why in plain words."""

    name: str
    status: CheckStatus
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "numbers": _jsonable(self.numbers),
        }


@dataclass(frozen=True)
class Verdict:
    """The checks' combined outcome, and why (no deadlines, no steps: see ``assess``)."""

    outcome: Outcome
    reason: str
    checks: tuple[CheckResult, ...] = ()
    numbers: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str) -> CheckResult:
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable mapping, for the resource status."""
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "numbers": _jsonable(self.numbers),
            "checks": [c.to_dict() for c in self.checks],
        }
