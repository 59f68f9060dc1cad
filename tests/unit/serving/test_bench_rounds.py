"""The serving benchmark's paired rounds: a fresh predictor each, and where its cycle went."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from modeldeploy.tools.bench.serving.load import LoadResult
from modeldeploy.tools.bench.serving.readme import _rounds_table

run = importlib.import_module("modeldeploy.tools.bench.serving.run")  # the package's is a function


def _scrape(passes: float, rows: float, seconds: float) -> str:
    labels = 'deployment="d",model_version="1",role="stable"'
    return "\n".join(
        [
            "# HELP modeldeploy_batch_size Items per model forward pass.",
            f'modeldeploy_batch_size_bucket{{{labels},le="16.0"}} {passes}',
            f"modeldeploy_batch_size_count{{{labels}}} {passes}",
            f"modeldeploy_batch_size_sum{{{labels}}} {rows}",
            f"modeldeploy_forward_pass_duration_seconds_count{{{labels}}} {passes}",
            f"modeldeploy_forward_pass_duration_seconds_sum{{{labels}}} {seconds}",
            f'modeldeploy_requests_total{{{labels},outcome="ok"}} 12345.0',
        ]
    )


def test_a_served_cycle_splits_into_the_pass_and_the_gap():
    before = _scrape(passes=10, rows=100, seconds=0.2)
    after = _scrape(passes=110, rows=1700, seconds=2.3)  # 100 passes, 2.1 s of them
    split = run.PassSplit.between(before, after, seconds=2.5)
    assert split.passes == 100 and split.rows_per_pass == 16.0
    assert split.pass_ms == pytest.approx(21.0) and split.gap_ms == pytest.approx(4.0)


def test_a_predictor_without_the_pass_series_still_reports_its_rows():
    """An older predictor (no ``modeldeploy_forward_pass_duration_seconds``): rows per pass,
    and no invented pass time."""
    strip = "modeldeploy_forward_pass"
    before = "\n".join(x for x in _scrape(0, 0, 0).splitlines() if strip not in x)
    after = "\n".join(x for x in _scrape(50, 800, 1.0).splitlines() if strip not in x)
    split = run.PassSplit.between(before, after, seconds=1.2)
    assert split.rows_per_pass == 16.0 and split.pass_ms is None and split.gap_ms is None
    assert run.PassSplit.between(before, before, 1.0) == run.PassSplit(0, None, None, None)


def test_histogram_totals_add_every_series_of_that_name_only():
    text = _scrape(3, 40, 0.5) + "\nmodeldeploy_batch_size_sum 2.0\nmodeldeploy_batch_sizes_sum 9"
    assert run.histogram_totals(text, "modeldeploy_batch_size") == (42.0, 3.0)
    assert run.histogram_totals("", "modeldeploy_batch_size") == (0.0, 0.0)


class _Fakes:
    """Stands in for processes and load: records which process each measurement hit."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.stopped: list[int] = []
        self.measured: list[tuple[int, int]] = []  # (process, concurrency)
        self.by_address: dict[str, int] = {}  # host:port -> process
        self.naive: set[int] = set()  # processes of the naive baseline (4x slower here)

    def start(self, argv: list[str], ready_url: str, log: Path, timeout: float = 300) -> Any:
        log.write_text("torch on cpu at bf16 (CPU has amx_bf16)\ntorch layout: padded batches\n")
        self.started.append(len(self.started))
        self.by_address[urlsplit(ready_url).netloc] = self.started[-1]
        if "modeldeploy.tools.bench.serving.baseline" in argv:
            self.naive.add(self.started[-1])
        return self.started[-1], 1.0

    def stop(self, proc: int) -> None:
        self.stopped.append(proc)

    def measure(self, url: str, texts: list[str], c: int, n: int, body: Any = None) -> Any:
        process = self.by_address[urlsplit(url).netloc]
        self.measured.append((process, c))
        slow = 4.0 if process in self.naive else 1.0
        return LoadResult(
            c, n, 0, seconds=0.025, p50_ms=5.0 * slow, p99_ms=9.0 * slow,
            throughput_rps=100.0 * c / slow,
        )  # fmt: skip

    def scrape(self, url: str) -> str:
        passes = len(self.measured)
        return _scrape(passes, passes * 16, passes * 0.02)


def _paired_system(
    fakes: _Fakes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rounds: int,
    baseline: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """``run._system`` for the torch predictor with ``rounds`` paired rounds, on ``fakes``."""
    for name in ("start", "stop", "measure", "scrape"):
        monkeypatch.setattr(
            run, f"_{name}" if name in ("start", "stop") else name, getattr(fakes, name)
        )
    pairing = run.Pairing(
        tmp_path, tmp_path / "texts.json", tmp_path, run.QUICK, {}, "torch-bf16", baseline
    )
    monkeypatch.setattr(run.Pairing, "run", lambda self, key: {"c16_sentences_per_s": 400.0})
    return dict(
        run._system(
            "predictor_torch",
            lambda: run._predictor(tmp_path, "torch"),
            ["a text"],
            tmp_path,
            lambda message: None,
            run.replace(run.QUICK, paired_rounds=rounds),
            pairing,
        )
    )


def test_every_paired_round_runs_on_a_fresh_warmed_up_predictor(tmp_path, monkeypatch):
    fakes = _Fakes()
    result = _paired_system(fakes, monkeypatch, tmp_path, rounds=3)
    assert fakes.started == [0, 1, 2, 3] and sorted(fakes.stopped) == [0, 1, 2, 3]
    assert [r["round"] for r in result["paired"]] == [0, 1, 2]
    for process in (1, 2, 3):  # warm-up at c=64 and 16, then c=16, 64 and 1, all its own
        assert [c for p, c in fakes.measured if p == process] == [64, 16, 16, 64, 1]
    assert [c for p, c in fakes.measured if p == 0] == [1, 16, 64]  # the one-shot runs
    assert all((tmp_path / f"predictor_torch-round{i}.log").is_file() for i in range(3))
    first = result["paired"][0]
    assert first["served_rows_per_pass"] == 16.0 and first["served_pass_ms"] == pytest.approx(20)
    assert first["ceiling_ms_per_16"] == 40.0


def test_the_readme_shows_each_round_and_says_whether_processes_were_fresh():
    rounds = [
        {"round": 0, "ceiling_before_after": [740.0, 750.0], "served_rps": 630.0,
         "fraction": 0.846, "served_rows_per_pass": 15.9, "served_pass_ms": 21.4,
         "served_gap_ms": 2.4, "ceiling_ms_per_16": 21.48},
    ]  # fmt: skip
    table = "\n".join(_rounds_table(rounds, fresh=True))
    assert "each on a predictor process of its own" in table
    assert "| 0 | 740 / 750 | 630 | 0.846 | 15.9 | 21.4 | 2.4 | 21.48 |" in table
    assert "all on one predictor process" in "\n".join(_rounds_table(rounds, fresh=False))
    assert _rounds_table([{"fraction": 0.8, "served_rps": 1.0}], fresh=False) == []
    rounds[0] |= {"baseline_c16_rps": 131.5, "speedup_c16": 4.791}
    table = "\n".join(_rounds_table(rounds, fresh=True))
    assert "the naive baseline ran at c=16 right after the server" in table
    assert "| 0 | 740 / 750 | 630 | 0.846 | 15.9 | 21.4 | 2.4 | 21.48 | 131.5 | 4.791 |" in table


def test_each_round_measures_a_fresh_naive_baseline_right_after_the_predictor(
    tmp_path, monkeypatch
):
    """``speedup_c16`` and ``p99_ratio_c16`` divide figures measured together: each round
    starts its own baseline process and drives it at c=16 just after the predictor's c=16."""
    fakes = _Fakes()
    result = _paired_system(
        fakes, monkeypatch, tmp_path, rounds=2, baseline=lambda: run._baseline(tmp_path)
    )
    # 0: the one-shot predictor; then per round its predictor and its baseline
    assert fakes.started == [0, 1, 2, 3, 4] and sorted(fakes.stopped) == [0, 1, 2, 3, 4]
    order = [(p, c) for p, c in fakes.measured if p in (1, 2)]
    # predictor warm-up (c=64, 16); baseline warm-up (16); predictor c=16; baseline c=16;
    # predictor c=64 and c=1
    assert order == [(1, 64), (1, 16), (2, 16), (1, 16), (2, 16), (1, 64), (1, 1)]
    assert all((tmp_path / f"baseline-for-predictor_torch-round{i}.log").is_file() for i in (0, 1))
    first = result["paired"][0]
    assert first["baseline_c16_rps"] == 400.0 and first["baseline_c16_p99_ms"] == 36.0
    assert first["speedup_c16"] == 4.0 and first["p99_ratio_c16"] == 0.25
