"""Render the README's serving benchmark section from ``bench/results.json``.

``python -m modeldeploy.tools.bench.serving.readme [bench/results.json] [KEY]`` prints
Markdown for the run under KEY (default ``serving``; ``serving_avx2`` holds a run on a CPU
without bf16); every figure comes from the file, so the README never carries a number the
file lacks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

NAMES = {
    "baseline_pipeline": "naive baseline (transformers pipeline, one request at a time)",
    "predictor_torch": "predictor, torch (`--precision auto`)",
    "predictor_onnx": "predictor, ONNX Runtime",
    "triton": "Triton (Python backend running ONNX Runtime)",
}


def _run(r: dict[str, Any]) -> str:
    return f"{r['p50_ms']:.0f} / {r['p99_ms']:.0f} / {r['throughput_rps']:.0f}"


def render(results: dict[str, Any], key: str = "serving") -> str:
    serving = results[key]
    f = serving["figures"]
    s = f["summary"]
    where = "" if key == "serving" else f", key `{key}`"
    lines = [
        f"### Serving (`serving` suite{where}, measured {serving['measured_at']})",
        "",
        f"{f['model']}, {f['texts']}, {f['machine']['cpus']} CPU cores (flags the figures "
        f"depend on: {', '.join(f['machine']['cpu_flags_used'])}), load generator on the same "
        f"machine (its CPU per request is in the table below); load average at the start "
        f"{f['machine'].get('load_average_at_start', 'not recorded')}, at the end "
        f"{f['machine']['load_average_at_end']}.",
        "",
        "In-process ceiling (no server; tokenization included; length-sorted batches; "
        "sentences/s at batches of at most 16, the most concurrency 16 can form, and at the "
        "best batch of any size):",
        "",
        "| runtime | accuracy (delta, points) | admitted | sentences/s, batch <= 16 | "
        "best, any batch (batch) | batch-1 P50 ms |",
        "|---|---|---|---|---|---|",
    ]
    for key, c in f["ceiling"].items():
        if "accuracy" not in c:
            lines.append(f"| {key} | failed | | | | |")
            continue
        c16 = c.get("c16_sentences_per_s")
        lines.append(
            f"| {key} | {c['accuracy']:.4f} ({c['accuracy_delta_points']:+.2f}) | "
            f"{'yes' if c['admitted'] else 'no'} | {'' if c16 is None else f'{c16:.0f}'} | "
            f"{c['best_sentences_per_s']:.0f} ({c.get('best_batch', '?')}) | "
            f"{c['batch1_p50_ms']:.1f} |"
        )
    lines += [
        "",
        "| system | c=1: P50 / P99 ms / req/s | c=16 | c=64 | client CPU ms/request "
        "(c=1 / 16 / 64) | shed at c=64 |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in NAMES.items():
        system = f["systems"].get(name, {})
        if "runs" not in system:
            lines.append(f"| {label} | {system.get('status', 'not run')} | | | | |")
            continue
        label = system.get("label", label)  # Triton's runtime and precision, when recorded
        runs = system["runs"]
        client = " / ".join(
            str(runs[c].get("client_cpu_ms_per_request", "n/a")) for c in ("1", "16", "64")
        )
        lines.append(
            f"| {label} | {_run(runs['1'])} | {_run(runs['16'])} | {_run(runs['64'])} | "
            f"{client} | {runs['64'].get('shed', 'n/a')} |"
        )
    cold = f["cold_start"]
    measured = {k: v for k, v in cold.items() if k != "goal_s"}
    # Files written before the definition moved to the first answer say so in each entry.
    first: dict[str, Any] = next(iter(measured.values()), {})
    definition = first.get("definition", "process start to ready")
    lines += [
        "",
        f"Cold start, {definition} (median of restarts, caches prepared): "
        + ", ".join(
            f"{k} {v['median_s']} s"
            + (f" ({v['median_cpu_s']} s CPU)" if v.get("median_cpu_s") is not None else "")
            for k, v in measured.items()
        )
        + f" (goal {cold['goal_s']} s).",
        "",
        f"Summary (best predictor: `{s['best_predictor']}`, served as {s['served_as']}; "
        f"ceiling used: `{s['ceiling_used']}` at batches <= 16, "
        f"{s.get('ceiling_c16_sentences_per_s')} sentences/s):",
        "",
        "| figure | value | goal | met |",
        "|---|---|---|---|",
    ]
    for key, goal in s["goals"].items():
        met = {True: "yes", False: "**no**", None: "n/a"}[s["met"][key]]
        lines.append(f"| `{key}` | {s[key]} | {goal} | {met} |")
    best_rounds = f["systems"].get(s.get("best_predictor", ""), {}).get("paired", [])
    bracketed = any("ceiling_before_after" in r for r in best_rounds)
    c16_how = "in-process batch 16, then the server at c=16, back to back"
    if bracketed:
        c16_how = "the server at c=16 against the in-process batch 16 just before and after it"
    paired = [
        ("fraction_of_ceiling_c16", "fraction_paired_rounds", f"paired rounds ({c16_how})"),
        ("overhead_c1_ms", "overhead_c1_paired_rounds", "the same paired rounds (the served "
         "configuration's in-process batch-1 P50, then the server at c=1)"),
        ("c64_over_c16", "c64_over_c16_paired_rounds", "the same paired rounds (the server "
         "at c=16, then at c=64, back to back)"),
        ("speedup_c16", "speedup_c16_paired_rounds", "the same paired rounds (the server at "
         "c=16, then a fresh naive baseline at c=16, back to back)"),
        ("p99_ratio_c16", "p99_ratio_c16_paired_rounds", "the same paired rounds (P99 of "
         "the same two runs)"),
    ]  # fmt: skip
    for key, rounds_key, how in paired:
        rounds = s.get(rounds_key)
        if rounds:
            lines.append(
                f"| `{key}` is the median of {how}: {', '.join(str(x) for x in rounds)}; "
                f"one-shot, measured minutes apart | {s.get(f'{key}_unpaired')} | | |"
            )
    if "fraction_of_best_any_batch_ceiling_c16" in s:
        lines.append(
            "| `fraction_of_best_any_batch_ceiling_c16` (of "
            f"{s['ceiling_best_any_batch_sentences_per_s']}/s, batches a c=16 server cannot "
            f"form) | {s['fraction_of_best_any_batch_ceiling_c16']} | | |"
        )
    lines.append(f"| `accuracy_delta_points` | {s['accuracy_delta_points']} | within 0.5 | |")
    lines += _rounds_table(best_rounds, bool(s.get("paired_rounds_on_fresh_processes")))
    return "\n".join(lines) + "\n"


def _rounds_table(rounds: list[dict[str, Any]], fresh: bool) -> list[str]:
    """The best predictor's paired rounds, one row each, with where its c=16 cycle went
    (files written before the split was recorded have no such columns: no table)."""
    if not rounds or not any("served_pass_ms" in r for r in rounds):
        return []
    each = "each on a predictor process of its own" if fresh else "all on one predictor process"
    naive = any("baseline_c16_rps" in r for r in rounds)
    lines = [
        "",
        f"Paired rounds of the best predictor ({each}). Each c=16 cycle splits into the "
        "forward pass (`modeldeploy_forward_pass_duration_seconds`) and the gap until the "
        "next one (answering, reading and tokenizing the next batch); the in-process time "
        "of 16 sentences includes their tokenizing"
        + ("; the naive baseline ran at c=16 right after the server" if naive else "")
        + ":",
        "",
        "| round | ceiling sentences/s (before / after) | served req/s | fraction | "
        "rows per pass | pass ms | gap ms | in process, ms per 16 |"
        + (" naive req/s | speedup |" if naive else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|---|" if naive else ""),
    ]
    for number, r in enumerate(rounds):
        before_after = " / ".join(f"{x:.0f}" for x in r.get("ceiling_before_after", []))
        lines.append(
            f"| {r.get('round', number)} | {before_after} | {r['served_rps']:.0f} | "
            f"{r['fraction']} | {r.get('served_rows_per_pass')} | {r.get('served_pass_ms')} | "
            f"{r.get('served_gap_ms')} | {r.get('ceiling_ms_per_16')} |"
            + (f" {r.get('baseline_c16_rps')} | {r.get('speedup_c16')} |" if naive else "")
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0] if args else "bench/results.json")
    key = args[1] if len(args) > 1 else "serving"
    print(render(json.loads(path.read_text()), key), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
