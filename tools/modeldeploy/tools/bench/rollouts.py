"""Rollout benchmark: the real controller, tick by tick, against simulated traffic.

What runs is the product: ``reconcile.tick`` with a DEFAULT ModelDeployment
(``{"model": {"name": "m"}}``), the real state machine, executor and registry decisions,
and the real observation pipeline (exposition text -> scrape parser -> snapshots ->
``MetricsWindows`` -> ``assess``). Only the world is simulated (``sim_world``: registry,
platform, pods, router; ``traffic``: requests, latency, labels), in simulated time, one
tick per ``intervalSeconds``. Each cell runs ``runs`` rollouts of one ``Truth`` and counts
how they ended: promoted, rolled back, or still held at the horizon.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.observer import MetricsWindows
from modeldeploy.operator.reconcile import Deps, tick
from modeldeploy.tools.bench.sim_world import SimPlatform, SimProvider, SimRegistry
from modeldeploy.tools.bench.traffic import Traffic, Truth

Progress = Callable[[str], None]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# A rollout undecided after this long counts as held: three hours is every step of the
# default spec (10, 50, 100 %) using its whole one-hour deadline.
HORIZON_S = 3 * 3600
FULL_RUNS = 200  # what the goals are judged on; fewer runs are marked as a reduced run
DEFAULT_SPEC: dict[str, Any] = {"model": {"name": "m"}}
GOALS = {
    "max_false_rollback": 0.01,
    "max_false_promotion": 0.05,
    "median_minutes_equal_10_per_s": 15.0,
    "drop_5_caught_at_2_per_s_or_more": 0.99,
    "tail_p99_caught_sigma_0_5": 0.95,
}


@dataclass(frozen=True)
class Cell:
    """One row of the matrix: a truth, the traffic, and the spec's first share."""

    name: str
    truth: str  # "equal" | "worse"
    world: Truth
    first_share: int | None = None  # None: the spec's default steps
    beyond_margin: float | None = None  # drop = the default margin + this
    tags: tuple[str, ...] = field(default=())

    def spec(self) -> dict[str, Any]:
        if self.first_share is None:
            return DEFAULT_SPEC
        later = [s for s in parse_spec(DEFAULT_SPEC).rollout.steps if s > self.first_share]
        return {**DEFAULT_SPEC, "rollout": {"steps": [self.first_share, *later]}}

    def resolved(self) -> Truth:
        if self.beyond_margin is None:
            return self.world
        margin = parse_spec(self.spec()).rollout.analysis.accuracy_margin
        return replace(self.world, drop=round(margin + self.beyond_margin, 6))


@dataclass
class Outcome:
    """How one rollout ended and what the controller did on the way."""

    end: str  # promoted | rolled_back | held
    minutes: float
    ticks: int
    phases: tuple[str, ...]
    reason: str
    canary_requests: int
    scrapes: int
    text_checked: int


def _outcome(status: dict[str, Any]) -> str | None:
    for entry in reversed(status.get("history") or []):
        if entry.get("version") == "2":
            return {"Promoted": "promoted", "RolledBack": "rolled_back"}.get(entry.get("outcome"))
    return None


def run_rollout(cell: Cell, seed: int, horizon_s: float = HORIZON_S, text: bool = False) -> Outcome:
    """One rollout from the challenger's alias move to its promotion, rollback or horizon."""
    rng = np.random.default_rng(seed)
    registry, world = SimRegistry("m"), SimPlatform()
    provider = SimProvider(world, text)
    deps = Deps(
        platform=world,
        registry_for=lambda spec: registry,  # type: ignore[arg-type,return-value]
        windows=MetricsWindows(lambda target: provider),
        emit=lambda kind, reason, message: None,
    )
    spec = cell.spec()
    body: dict[str, Any] = {
        "metadata": {"name": "m", "namespace": "bench", "generation": 1, "uid": "u"},
        "spec": spec,
    }
    dt = float(parse_spec(spec).rollout.interval_seconds)

    def run_tick() -> dict[str, Any]:
        result = tick(body, T0 + timedelta(seconds=world.clock), deps)
        if result.patch:
            body["status"] = {**(body.get("status") or {}), **result.patch}
        return body["status"]

    registry.set_alias("m", "champion", "1")
    run_tick()
    registry.set_alias("m", "challenger", "2")
    status = run_tick()
    started = world.clock
    traffic = Traffic(cell.resolved(), dt, rng)
    phases, ticks, end, reason = [status.get("phase", "")], 2, None, ""
    while world.clock - started < horizon_s and end is None:
        traffic.advance(world, world.clock - started + dt)
        world.clock += dt
        status = run_tick()
        ticks += 1
        if status.get("phase") != phases[-1]:
            phases.append(status.get("phase", ""))
        end = _outcome(status)
        reason = (status.get("lastAnalysis") or {}).get("reason", "") or status.get("message", "")
    return Outcome(
        end or "held",
        (world.clock - started) / 60.0,
        ticks,
        tuple(phases),
        str(reason)[:200],
        traffic.requests["canary"],
        provider.scrapes,
        provider.checked,
    )


def _run_one(args: tuple[int, Cell, int, float, bool]) -> tuple[int, Outcome]:
    index, *rest = args
    return index, run_rollout(*rest)  # type: ignore[arg-type]


def _work(
    index: int, cell: Cell, runs: int, seed: int, horizon_s: float
) -> list[tuple[int, Cell, int, float, bool]]:
    """The rollouts of one cell; the first reads exposition text (see ``SimProvider``)."""
    return [(index, cell, seed * 1_000_003 + i, horizon_s, i == 0) for i in range(runs)]


def run_cell(
    cell: Cell, runs: int, seed: int = 0, horizon_s: float = HORIZON_S, jobs: int = 1
) -> dict[str, Any]:
    """``runs`` rollouts of ``cell``; shares of each ending and the median minutes."""
    work = _work(0, cell, runs, seed, horizon_s)
    if jobs > 1:
        with Pool(jobs) as pool:
            outcomes = [o for _, o in pool.imap_unordered(_run_one, work, chunksize=1)]
    else:
        outcomes = [_run_one(w)[1] for w in work]
    return cell_result(cell, outcomes)


def cell_result(cell: Cell, outcomes: list[Outcome]) -> dict[str, Any]:
    """One cell's line in ``bench/results.json`` from its rollouts' outcomes."""
    runs = len(outcomes)
    ends = Counter(o.end for o in outcomes)
    decided = np.array([o.minutes if o.end != "held" else math.inf for o in outcomes])
    median = float(np.quantile(decided, 0.5, method="higher"))
    rolled = [o for o in outcomes if o.end == "rolled_back"]
    reasons = Counter(o.reason.split(":")[0][:80] for o in outcomes if o.end != "promoted")
    return {
        "name": cell.name,
        "truth": cell.truth,
        "runs": runs,
        "promoted": ends["promoted"] / runs,
        "rolled_back": ends["rolled_back"] / runs,
        "held": ends["held"] / runs,
        "median_minutes": None if math.isinf(median) else round(median, 1),
        "world": asdict(cell.resolved()),
        "first_share": cell.first_share or parse_spec(DEFAULT_SPEC).rollout.steps[0],
        "tags": list(cell.tags),
        "ticks_total": sum(o.ticks for o in outcomes),
        "scrapes_total": sum(o.scrapes for o in outcomes),
        "scrapes_checked_against_text": sum(o.text_checked for o in outcomes),
        "phases_seen": sorted({p for o in outcomes for p in o.phases}),
        "median_canary_requests_at_rollback": (
            int(np.median([o.canary_requests for o in rolled])) if rolled else None
        ),
        "top_reasons_not_promoted": dict(reasons.most_common(3)),
    }


def matrix(pair_every_label: bool = True) -> list[Cell]:
    """Each dimension against one baseline cell (10 labels/s, default first share,
    accuracy 0.85, no label delay, sigma 0.5), for an identical and a worse canary."""
    base = Truth(pair_every_label=pair_every_label)
    eq, worse = "equal", "worse"
    cells = [Cell("equal baseline 10/s", eq, base, tags=("baseline",))]
    for rate in (1.0, 2.0, 50.0):
        cells.append(Cell(f"equal {rate:g}/s", eq, replace(base, label_rate=rate)))
    for share in (5, 50):
        cells.append(Cell(f"equal first share {share}%", eq, base, first_share=share))
    for acc in (0.70, 0.93):
        cells.append(Cell(f"equal accuracy {acc}", eq, replace(base, accuracy=acc)))
    for delay in ("independent", "informative", "bursty"):
        cells.append(Cell(f"equal delay {delay}", eq, replace(base, delay=delay)))
    cells += [
        Cell("equal pod restart at 5 min", eq, replace(base, restart_at=300.0)),
        Cell("equal canary warm-up 30 slow", eq, replace(base, cold_requests=30)),
        Cell("equal sigma 1.0", eq, replace(base, sigma=1.0)),
        Cell("equal canary 20% faster", eq, replace(base, canary_speed=0.8)),
    ]
    for rate in (1.0, 2.0, 10.0, 50.0):
        cells.append(
            Cell(
                f"worse 1pt beyond margin {rate:g}/s",
                worse,
                replace(base, label_rate=rate),
                beyond_margin=0.01,
            )
        )
    cells.append(
        Cell(
            "worse 1pt beyond margin, informative delay",
            worse,
            replace(base, delay="informative"),
            beyond_margin=0.01,
        )
    )
    for acc in (0.70, 0.93):
        cells.append(
            Cell(
                f"worse 1pt beyond margin accuracy {acc}",
                worse,
                replace(base, accuracy=acc),
                beyond_margin=0.01,
            )
        )
    cells += [
        Cell(
            "worse 1pt beyond margin, bursty labels",
            worse,
            replace(base, delay="bursty"),
            beyond_margin=0.01,
        ),
        Cell(
            "worse 1pt beyond margin, pod restart at 5 min",
            worse,
            replace(base, restart_at=300.0),
            beyond_margin=0.01,
        ),
    ]
    for rate in (1.0, 2.0, 10.0, 50.0):
        cells.append(
            Cell(
                f"worse 5pt {rate:g}/s",
                worse,
                replace(base, label_rate=rate, drop=0.05),
                tags=("drop5",),
            )
        )
    for sigma in (0.5, 1.0):
        cells.append(
            Cell(
                f"worse P99 +25% tail sigma {sigma}",
                worse,
                replace(base, sigma=sigma, canary_p99=1.25),
                tags=("tail",),
            )
        )
    return cells


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures and whether each goal held in this run."""
    equal = [c for c in cells if c["truth"] == "equal"]
    worse = [c for c in cells if c["truth"] == "worse"]
    base = next((c for c in equal if "baseline" in c["tags"]), None)
    drop5 = [c for c in worse if "drop5" in c["tags"] and c["world"]["label_rate"] >= 2]
    tail = {c["world"]["sigma"]: c["rolled_back"] for c in worse if "tail" in c["tags"]}
    summary: dict[str, Any] = {
        "max_false_rollback": max((c["rolled_back"] for c in equal), default=None),
        "max_false_promotion": max((c["promoted"] for c in worse), default=None),
        "median_minutes_equal_10_per_s": base["median_minutes"] if base else None,
        "min_drop_5_caught_at_2_per_s_or_more": min(
            (c["rolled_back"] for c in drop5), default=None
        ),
        "tail_p99_caught": {str(k): v for k, v in sorted(tail.items())},
        "max_equal_held": max((c["held"] for c in equal), default=None),
        "goals": GOALS,
    }
    met = {
        "false_rollback": _le(summary["max_false_rollback"], GOALS["max_false_rollback"]),
        "false_promotion": _le(summary["max_false_promotion"], GOALS["max_false_promotion"]),
        "median_minutes": _le(
            summary["median_minutes_equal_10_per_s"], GOALS["median_minutes_equal_10_per_s"]
        ),
        "drop_5": _ge(
            summary["min_drop_5_caught_at_2_per_s_or_more"],
            GOALS["drop_5_caught_at_2_per_s_or_more"],
        ),
        "tail_sigma_0_5": _ge(tail.get(0.5), GOALS["tail_p99_caught_sigma_0_5"]),
    }
    summary["goals_met"] = met
    return summary


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _ge(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def run(
    runs: int = 200,
    seed: int = 0,
    cells: list[Cell] | None = None,
    horizon_s: float = HORIZON_S,
    jobs: int = 1,
    progress: Progress | None = None,
    partial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every cell's rollouts, on ``jobs`` processes at once (one pool for the whole matrix,
    so no core waits for a cell's last rollout); ``partial`` gets the finished cells so far
    after each cell completes."""
    say = progress or (lambda message: None)
    started = time.monotonic()
    chosen = cells if cells is not None else matrix()
    work = [w for i, c in enumerate(chosen) for w in _work(i, c, runs, seed + i, horizon_s)]
    pending: dict[int, list[Outcome]] = {i: [] for i in range(len(chosen))}
    done: dict[int, dict[str, Any]] = {}

    def finish(index: int, outcome: Outcome) -> None:
        pending[index].append(outcome)
        if len(pending[index]) < runs:
            return
        result = done[index] = cell_result(chosen[index], pending.pop(index))
        say(
            f"{result['name']}: promoted {result['promoted']:.3f} rolled back "
            f"{result['rolled_back']:.3f} held {result['held']:.3f} median "
            f"{result['median_minutes']} min ({time.monotonic() - started:.0f} s in)"
        )
        if partial is not None:
            finished = [done[i] for i in sorted(done)]
            partial({"cells": finished, "summary": summarise(finished)})

    if jobs > 1:
        with Pool(jobs) as pool:
            for index, outcome in pool.imap_unordered(_run_one, work, chunksize=1):
                finish(index, outcome)
    else:
        for item in work:
            finish(*_run_one(item))
    out = [done[i] for i in sorted(done)]
    return {
        "cells": out,
        "summary": summarise(out),
        "spec": DEFAULT_SPEC,
        "analysis_defaults": parse_spec(DEFAULT_SPEC).rollout.analysis.to_dict(),
        "horizon_minutes": horizon_s / 60,
        "runs_per_cell": runs,
        "seed": seed,
        "jobs": jobs,
        "seconds": round(time.monotonic() - started, 1),
    }


def run_suite(output_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """The ``modeldeploy-dev bench`` entry (the caller merges it into bench/results.json)."""
    del output_dir
    return run(progress=progress, jobs=os.cpu_count() or 1)


def merge(path: Path, results: dict[str, Any]) -> None:
    """Write ``results`` as the ``rollouts`` key of ``path``, as ``modeldeploy-dev bench``
    does (with the time and the machine of the run); the other keys stay as they are."""
    everything: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    everything["rollouts"] = {
        **results,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        },
    }
    path.write_text(json.dumps(everything, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--cells",
        "--only",
        action="append",
        default=[],
        help="run only the cells whose name contains this (repeat, or comma-separated)",
    )
    parser.add_argument("--list", action="store_true", help="list the cells and exit")
    parser.add_argument("--pair-shares-only", action="store_true", help="no pairing per label")
    parser.add_argument("--horizon-hours", type=float, default=HORIZON_S / 3600)
    parser.add_argument("--output", type=Path)
    parser.add_argument(
        "--merge",
        type=Path,
        help="also write the results under 'rollouts' in this file (bench/results.json)",
    )
    args = parser.parse_args(argv)
    cells = matrix(pair_every_label=not args.pair_shares_only)
    wanted = [w.strip() for arg in args.cells for w in arg.split(",") if w.strip()]
    if wanted:
        cells = [c for c in cells if any(w in c.name for w in wanted)]
    if args.list or not cells:
        print("\n".join(c.name for c in cells) or "no cell matches", file=sys.stderr)
        return 0 if cells else 2
    results = run(
        args.runs,
        args.seed,
        cells,
        args.horizon_hours * 3600,
        args.jobs,
        lambda m: print(f"  [rollouts] {m}", file=sys.stderr, flush=True),
        partial=(lambda r: args.output.write_text(json.dumps(r, indent=2)))
        if args.output
        else None,
    )
    if args.runs < FULL_RUNS or wanted:
        results["note"] = (
            f"REDUCED RUN: {args.runs} rollouts per cell, {len(cells)} of the matrix's "
            f"{len(matrix())} cells (the goals ask for {FULL_RUNS} on every cell)"
        )
    if args.merge:
        merge(args.merge, results)
    text = json.dumps(results, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(json.dumps(results["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
