"""The demo's report: a Markdown summary and a PNG timeline, from what the demo recorded.

The timeline is one sample per operator tick: phase, versions, canary weight and, when an
analysis ran, that window's observations (per arm: labels, correct, requests, latency
histogram). Accuracy bands are 95% Wilson intervals per arm and per window (a window is
one traffic step, so they widen again when a step starts); P99 is read from the window's
latency histogram (the bucket edge at which 99% of requests are done); cost is CPU seconds
per 1k inferences per arm over the same window (``modeldeploy_cpu_seconds_total``, the rule of
``operator.analysis.cost``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modeldeploy.operator.analysis.cost import MIN_REQUESTS

MIN_PLOTTED_LABELS = 20


@dataclass
class Sample:
    t: float
    phase: str
    stable: str
    canary: str
    weight: int
    step: int
    observations: Mapping[str, Any] | None = None
    decision: str = ""
    # the step the observations belong to: the one analysed, before the tick moved on
    window_step: int | None = None
    window_weight: int | None = None

    @property
    def analysed_step(self) -> int:
        return self.step if self.window_step is None else self.window_step

    @property
    def analysed_weight(self) -> int:
        return self.weight if self.window_weight is None else self.window_weight


@dataclass
class Rollout:
    """One candidate's rollout, as the report tells it."""

    role: str  # what the demo meant it to be: "good candidate" / "bad candidate"
    version: str
    recipe: str
    outcome: str = ""
    reason: str = ""
    seconds: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    registry: dict[str, str] = field(default_factory=dict)  # decision tags on the version


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float, float]:
    """(estimate, lower, upper) of a proportion, 95% Wilson score interval."""
    if total <= 0:
        return math.nan, math.nan, math.nan
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def p99_ms(latency: Mapping[str, Any] | None, minimum: int = 100) -> float:
    """The 99th percentile's bucket edge in ms (NaN with fewer than ``minimum`` requests)."""
    if not latency:
        return math.nan
    bounds = [math.inf if b == "+Inf" else float(b) for b in latency.get("bounds", [])]
    cumulative = list(latency.get("cumulative", []))
    if not cumulative or cumulative[-1] < minimum:
        return math.nan
    need = 0.99 * cumulative[-1]
    for bound, count in zip(bounds, cumulative, strict=False):
        if count >= need:
            return bound * 1000 if math.isfinite(bound) else math.nan
    return math.nan


def cpu_per_1k(arm: Mapping[str, Any], key: str = "cpu_seconds") -> float:
    """CPU seconds (or ``key``'s seconds) per 1k requests of one arm's window (NaN: no such
    series or too few requests)."""
    total = sum((arm.get("requests") or {}).values())
    seconds = arm.get(key)
    if seconds is None or total < MIN_REQUESTS:
        return math.nan
    return 1000.0 * float(seconds) / total


def gpu_per_1k(arm: Mapping[str, Any]) -> float:
    """Allocated GPU seconds per 1k requests (NaN: the arm holds no GPU, or too few)."""
    return cpu_per_1k(arm, "gpu_seconds")


def step_table(samples: Sequence[Sample], version: str) -> list[dict[str, Any]]:
    """Per traffic step of ``version``: the last window seen (labels, requests, accuracy)."""
    last: dict[int, Sample] = {}
    first_t: dict[int, float] = {}
    for s in samples:
        if s.canary != version:
            continue
        first_t.setdefault(s.step, s.t)
        if s.observations is not None:
            last[s.analysed_step] = s
    rows = []
    for step in sorted(last):
        obs = last[step].observations or {}
        stable, canary = obs.get("stable") or {}, obs.get("canary") or {}
        paired = obs.get("paired") or {}
        rows.append(
            {
                "step": step,
                "weight": last[step].analysed_weight,
                "seconds": round(last[step].t - first_t.get(step, last[step].t)),
                "canary_labels": canary.get("labelled_total", 0),
                "stable_labels": stable.get("labelled_total", 0),
                "pairs": sum(paired.values()) if paired else 0,
                "canary_requests": sum((canary.get("requests") or {}).values()),
                "stable_requests": sum((stable.get("requests") or {}).values()),
                "canary_accuracy": wilson(
                    canary.get("labelled_correct", 0), canary.get("labelled_total", 0)
                )[0],
                "stable_accuracy": wilson(
                    stable.get("labelled_correct", 0), stable.get("labelled_total", 0)
                )[0],
                "canary_p99_ms": p99_ms(canary.get("latency")),
                "stable_p99_ms": p99_ms(stable.get("latency")),
                "canary_cpu_per_1k": cpu_per_1k(canary),
                "stable_cpu_per_1k": cpu_per_1k(stable),
                "canary_gpu_per_1k": gpu_per_1k(canary),
                "stable_gpu_per_1k": gpu_per_1k(stable),
                "decision": last[step].decision,
            }
        )
    return rows


def _fmt(value: Any, spec: str = ".3f") -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else format(value, spec)
    return str(value)


def markdown(
    *,
    title: str,
    facts: Sequence[tuple[str, str]],
    rollouts: Sequence[Rollout],
    aliases: Mapping[str, str],
    events: Sequence[Mapping[str, Any]],
    png_name: str,
) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts]
    lines += ["", "## Decisions", ""]
    lines += [
        "| candidate | version | checkpoint | outcome | took | reason |",
        "|---|---|---|---|---|---|",
    ]
    for r in rollouts:
        reason = r.reason.replace("|", "/")
        lines.append(
            f"| {r.role} | {r.version} | `{r.recipe}` | **{r.outcome or 'undecided'}** "
            f"| {r.seconds:.0f} s | {reason} |"
        )
    lines += ["", "Registry aliases at the end: "]
    lines[-1] += ", ".join(f"`{a}` -> v{v}" for a, v in sorted(aliases.items())) or "none"
    for r in rollouts:
        tags = ", ".join(f"`{k}={v}`" for k, v in sorted(r.registry.items())) or "none"
        lines.append(f"- v{r.version} decision tags in the registry: {tags}")
    for r in rollouts:
        lines += ["", f"## v{r.version} ({r.role}, `{r.recipe}`): labels and requests per step", ""]
        # GPU columns only where an arm held GPUs: a CPU demo's table stays as it was.
        gpu_keys = ("canary_gpu_per_1k", "stable_gpu_per_1k")
        on_gpu = any(not math.isnan(row.get(k, math.nan)) for row in r.steps for k in gpu_keys)
        extra = " canary GPU s/1k | stable GPU s/1k |" if on_gpu else ""
        columns = 15 + (2 if on_gpu else 0)
        lines += [
            "| step | weight | s | canary labels | stable labels | pairs "
            "| canary req | stable req | canary acc | stable acc | canary P99 ms "
            f"| stable P99 ms | canary CPU s/1k | stable CPU s/1k |{extra} decision |",
            "|" + "---|" * columns,
        ]
        for row in r.steps:
            gpu_cells = "".join(
                f" {_fmt(row.get(k, math.nan), '.1f')} |" for k in gpu_keys if on_gpu
            )
            lines.append(
                f"| {row['step']} | {row['weight']}% | {row['seconds']} | {row['canary_labels']} "
                f"| {row['stable_labels']} | {row['pairs']} | {row['canary_requests']} "
                f"| {row['stable_requests']} | {_fmt(row['canary_accuracy'])} "
                f"| {_fmt(row['stable_accuracy'])} | {_fmt(row['canary_p99_ms'], '.1f')} "
                f"| {_fmt(row['stable_p99_ms'], '.1f')} "
                f"| {_fmt(row.get('canary_cpu_per_1k', math.nan), '.2f')} "
                f"| {_fmt(row.get('stable_cpu_per_1k', math.nan), '.2f')} |{gpu_cells}"
                f" {row['decision']} |"
            )
        if not r.steps:
            lines.append("|" + " - |" * columns)
    lines += ["", "## Operator events", ""]
    for e in events:
        lines.append(f"- {e.get('time')} {e.get('type')} **{e.get('reason')}**: {e.get('message')}")
    lines += ["", "## Timeline", "", f"![timeline]({png_name})", ""]
    lines += [
        "Accuracy is per analysis window (one traffic step, from 20 labels) with 95% Wilson bands;",
        "P99 is the",
        "latency-histogram bucket edge at 99% of the window's requests (shown from 100 requests).",
        "CPU s/1k is the CPU time of each arm's predictor process per 1,000 requests in the",
        "window (docs/metrics.md, Cost per 1k inferences; shared cores make it noisy).",
        "GPU s/1k (shown only when an arm held GPUs) is its GPUs x wall seconds per 1,000",
        "requests: what the GPUs are billed, busy or idle, at that step's traffic share.",
        "",
    ]
    return "\n".join(lines)


def plot(
    samples: Sequence[Sample],
    markers: Sequence[tuple[float, str, str]],
    path: Path,
    title: str,
) -> Path:
    """Weight, accuracy per arm with bands, P99 per arm; ``markers`` are (t, label, color)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_w, ax_a, ax_l) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    origin = samples[0].t if samples else 0.0  # the operator's first tick
    samples = [replace(s, t=s.t - origin) for s in samples]
    markers = [(x - origin, label, color) for x, label, color in markers]
    t = [s.t for s in samples]
    ax_w.step(t, [s.weight if s.canary else 0 for s in samples], where="post", color="tab:orange")
    ax_w.set_ylabel("canary weight (%)")
    ax_w.set_ylim(-5, 105)
    ax_w.set_title(title)

    arms = (("stable", "tab:blue"), ("canary", "tab:orange"))
    for arm, color in arms:
        xs, est, lo, hi, p99 = [], [], [], [], []
        for s in samples:
            if s.observations is None:
                continue
            a = s.observations.get(arm) or {}
            if a.get("labelled_total", 0) < MIN_PLOTTED_LABELS:
                continue  # a fresh window's first few labels say nothing yet
            p, low, high = wilson(a.get("labelled_correct", 0), a.get("labelled_total", 0))
            xs.append(s.t)
            est.append(p)
            lo.append(low)
            hi.append(high)
            p99.append(p99_ms(a.get("latency")))
        if not xs:
            continue
        # break the lines between windows of different canaries / steps
        ax_a.plot(xs, est, ".-", color=color, label=f"{arm} accuracy", markersize=3)
        ax_a.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
        ax_l.plot(xs, p99, ".-", color=color, label=f"{arm} P99", markersize=3)
    ax_a.set_ylabel("accuracy (window, 95% band)")
    ax_a.set_ylim(0.3, 1.0)
    ax_a.legend(loc="lower left")
    ax_l.set_ylabel("P99 latency (ms)")
    ax_l.set_xlabel("seconds since the operator started")
    ax_l.legend(loc="upper left")
    ax_l.set_ylim(bottom=0)
    for ax in (ax_w, ax_a, ax_l):
        ax.grid(alpha=0.3)
        for x, _, color in markers:
            ax.axvline(x, color=color, linestyle="--", linewidth=1, alpha=0.8)
    span = max(t[-1] - t[0], 1.0) if t else 1.0
    previous, level = -math.inf, 0
    for x, label, color in markers:
        level = level + 1 if x - previous < 0.04 * span else 0  # stagger close labels
        previous = x
        ax_w.annotate(
            label,
            (x, 98),
            xytext=(3 + 11 * (level % 3), 0),
            textcoords="offset points",
            fontsize=8,
            color=color,
            va="top",
            rotation=90,
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
