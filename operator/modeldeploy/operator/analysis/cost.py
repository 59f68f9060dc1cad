"""Cost per 1k inferences per arm: a figure the analysis reports, never a gate.

Each arm's process exports its own CPU time (``modeldeploy_cpu_seconds_total``) and, when it
holds GPUs, the GPUs it holds x wall seconds (``modeldeploy_gpu_allocated_seconds_total``:
a GPU is billed while allocated, busy or not) and the device time of its forward passes
(``modeldeploy_gpu_busy_seconds_total``); docs/metrics.md. Over the same window as the
checks, seconds per 1,000 requests is ``1000 * seconds / requests``, and with the prices
(``spec.cost.cpuCoreHour``, ``spec.cost.gpuHour``, else the chart's) that is money:
``cpu_per_1k / 3600 * core_hour + gpu_per_1k / 3600 * gpu_hour``. An arm's money figure is
given only when every resource it exports has a price: a GPU arm priced for CPU only would
look a hundred times cheaper than it is. For the same reason, when the spec asks for GPUs
(``spec.resources.gpu``) an arm that exports no GPU seconds (a Triton arm, today) has no money
figure and is not compared: its CPU seconds are all that is known, and they are not its cost.

The comparison ("the canary costs 18% more per 1k inferences") is made on the basis that
says something about the *version*:

* both arms on GPUs: busy GPU seconds per request, i.e. cost at equal GPU utilisation. The
  allocated GPU seconds per request of two arms with the same GPUs differ by their traffic
  shares (a canary at 5% holds a whole GPU for a twentieth of the requests), which is a
  fact of the rollout step, not of the version; it is reported, not compared;
* neither on GPUs: CPU seconds per request (no price needed);
* one on GPUs, one not: money per 1k (billed), when both are priced; else no comparison.

Cost changes no decision (the checks prove quality; what a candidate may cost is a
capacity question for people), so it only adds numbers to the verdict, and a sentence to the
reason of a passing verdict, which becomes the promotion reason, when the canary costs at
least ``NOTE_ABOVE`` more: below that the difference is within what shared cores and
process start-up move between two processes.
"""

from __future__ import annotations

from dataclasses import replace

from modeldeploy.operator.analysis.observations import ArmObservations, Observations
from modeldeploy.operator.analysis.verdict import Outcome, Verdict

NOTE_ABOVE = 0.05  # relative: a canary 5% or more costlier per 1k is named in the reason
MIN_REQUESTS = 100  # per arm: fewer and the process's idle CPU dominates the figure
ARMS = ("stable", "canary")


def _per_1k(arm: ArmObservations, seconds: float | None) -> float | None:
    """``seconds`` per 1,000 requests (every outcome: refused input costs too), or None when
    the arm exports no such seconds or served fewer than ``MIN_REQUESTS``."""
    total = sum(arm.requests.values())
    if seconds is None or total < MIN_REQUESTS:
        return None
    return 1000.0 * seconds / total


def cpu_seconds_per_1k(arm: ArmObservations) -> float | None:
    """CPU seconds per 1,000 requests (None: not exported, or too few requests)."""
    return _per_1k(arm, arm.cpu_seconds)


def gpu_seconds_per_1k(arm: ArmObservations) -> float | None:
    """Allocated GPU seconds per 1,000 requests: what the arm's GPUs are billed per 1k at
    this window's traffic (None: the arm holds no GPU, or too few requests)."""
    return _per_1k(arm, arm.gpu_seconds)


def gpu_busy_seconds_per_1k(arm: ArmObservations) -> float | None:
    """Device seconds of forward passes per 1,000 requests (None as above)."""
    if arm.gpu_seconds is None:
        return None
    return _per_1k(arm, arm.gpu_busy_seconds or 0.0)


def money_per_1k(
    cpu: float | None, gpu: float | None, core_hour: float | None, gpu_hour: float | None
) -> float | None:
    """Price of 1k inferences from seconds per 1k; None unless every resource the arm
    exports (CPU, GPU) has a price."""
    if cpu is None and gpu is None:
        return None
    if (cpu is not None and core_hour is None) or (gpu is not None and gpu_hour is None):
        return None
    total = 0.0
    if cpu is not None and core_hour is not None:
        total += cpu / 3600.0 * core_hour
    if gpu is not None and gpu_hour is not None:
        total += gpu / 3600.0 * gpu_hour
    return total


def numbers(
    observations: Observations,
    price_per_core_hour: float | None,
    price_per_gpu_hour: float | None = None,
    gpus_requested: bool = False,
) -> dict[str, float]:
    """``cost.*`` numbers for the status (``lastAnalysis.numbers``) and the operator metric.

    ``gpus_requested``: the spec asks for GPUs, so an arm without GPU seconds is unpriced."""
    out: dict[str, float] = {}
    money: dict[str, float | None] = {}
    busy: dict[str, float | None] = {}
    cpu_of: dict[str, float | None] = {}
    for name in ARMS:
        arm = getattr(observations, name)
        cpu, gpu = cpu_seconds_per_1k(arm), gpu_seconds_per_1k(arm)
        cpu_of[name], busy[name] = cpu, gpu_busy_seconds_per_1k(arm)
        if cpu is not None:
            out[f"{name}_cpu_seconds_per_1k"] = round(cpu, 6)
        if gpu is not None:
            out[f"{name}_gpu_seconds_per_1k"] = round(gpu, 6)
            out[f"{name}_gpu_busy_seconds_per_1k"] = round(busy[name] or 0.0, 6)
            if arm.gpu_seconds:
                out[f"{name}_gpu_utilisation"] = round(
                    (arm.gpu_busy_seconds or 0.0) / arm.gpu_seconds, 4
                )
        money[name] = money_per_1k(cpu, gpu, price_per_core_hour, price_per_gpu_hour)
        if gpus_requested and arm.gpu_seconds is None:
            money[name] = None  # holds GPUs it does not report: its cost is unknown
        if money[name] is not None:
            out[f"{name}_per_1k"] = round(money[name] or 0.0, 8)
    unreported = gpus_requested and any(getattr(observations, a).gpu_seconds is None for a in ARMS)
    relative = None if unreported else _relative(money, busy, cpu_of)
    if relative is not None:
        out["canary_relative"] = round(relative, 4)
    return out


def _ratio(stable: float | None, canary: float | None) -> float | None:
    if not stable or canary is None:
        return None
    return canary / stable - 1.0


def _relative(
    money: dict[str, float | None], busy: dict[str, float | None], cpu: dict[str, float | None]
) -> float | None:
    """Canary / stable - 1 on the basis the module docs give (None: not comparable)."""
    on_gpu = [busy[a] is not None for a in ARMS]
    if all(on_gpu):
        return _ratio(busy["stable"], busy["canary"])
    if not any(on_gpu):
        return _ratio(cpu["stable"], cpu["canary"])
    return _ratio(money["stable"], money["canary"])


def _fmt(value: float) -> str:
    """Three significant digits, without an exponent for the thousands a GPU arm reaches."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _detail(figures: dict[str, float]) -> str:
    """The figures behind the comparison, for the reason."""
    f = {k: _fmt(v) for k, v in figures.items()}
    if "canary_gpu_busy_seconds_per_1k" in f and "stable_gpu_busy_seconds_per_1k" in f:
        return (
            f" at equal GPU utilisation ({f['canary_gpu_busy_seconds_per_1k']} vs"
            f" {f['stable_gpu_busy_seconds_per_1k']} busy GPU seconds per 1k;"
            f" billed at this window's traffic: {f['canary_gpu_seconds_per_1k']} vs"
            f" {f['stable_gpu_seconds_per_1k']} allocated GPU seconds per 1k)"
        )
    if "canary_gpu_seconds_per_1k" in f or "stable_gpu_seconds_per_1k" in f:
        return f" ({f['canary_per_1k']} vs {f['stable_per_1k']} per 1k, CPU and GPU at the prices)"
    return f" ({f['canary_cpu_seconds_per_1k']} vs {f['stable_cpu_seconds_per_1k']} CPU seconds)"


def with_cost(
    verdict: Verdict,
    observations: Observations | None,
    price_per_core_hour: float | None,
    price_per_gpu_hour: float | None = None,
    gpus_requested: bool = False,
) -> Verdict:
    """``verdict`` with the ``cost.*`` numbers, and on a pass the costlier-canary note."""
    if observations is None:
        return verdict
    figures = numbers(observations, price_per_core_hour, price_per_gpu_hour, gpus_requested)
    if not figures:
        return verdict
    reason = verdict.reason
    relative = figures.get("canary_relative")
    if verdict.outcome is Outcome.PASS and relative is not None and relative >= NOTE_ABOVE:
        reason += (
            f"; cost: the canary costs {relative:.0%} more per 1k inferences{_detail(figures)}"
        )
    extra = {f"cost.{k}": v for k, v in figures.items()}
    return replace(verdict, reason=reason, numbers={**verdict.numbers, **extra})
