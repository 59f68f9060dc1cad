"""A serving benchmark run goes under the key of its kind of CPU, never over another's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldeploy.serving.backends import hardware
from modeldeploy.tools.bench import cli
from modeldeploy.tools.bench.serving import keys

AMX = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
AVX512_BF16_ONLY = {"avx2", "avx512f", "avx512_bf16"}
EPYC_AVX2 = {"sse4_2", "avx", "avx2", "fma"}


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        (AMX, "serving"),
        (AVX512_BF16_ONLY, "serving"),
        (EPYC_AVX2, "serving_avx2"),
        ({"sse2"}, "serving_fp32"),
        (set(), "serving_fp32"),
    ],
)
def test_the_key_follows_the_features_the_figures_depend_on(flags, key):
    assert keys.results_key(flags) == key


def test_the_bf16_rule_is_the_predictors_own():
    # The key says "bf16 run" exactly where `--precision auto` serves bf16.
    for flags in (AMX, AVX512_BF16_ONLY, EPYC_AVX2, set()):
        served = hardware.choose("auto", hardware.Hardware(frozenset(flags))).precision
        assert (keys.results_key(flags) == keys.BF16_KEY) == (served == "bf16")


def _fake_suite(monkeypatch: pytest.MonkeyPatch, flags: set[str]) -> None:
    def fake_serving(output_dir: Path, progress) -> dict[str, object]:
        return {"summary": {"speedup_c16": 1.0}}

    monkeypatch.setitem(cli.SUITES, "serving", "fake_serving_suite:run")
    monkeypatch.setattr(cli, "_load", lambda spec: fake_serving)
    monkeypatch.setattr(hardware, "cpu_flags", lambda *a: frozenset(flags))


def test_make_bench_on_an_avx2_machine_keeps_the_bf16_run(tmp_path, monkeypatch):
    output = tmp_path / "results.json"
    earlier = {"serving": {"figures": {"summary": {"speedup_c16": 4.9}}}, "soak": {"x": 1}}
    output.write_text(json.dumps(earlier))
    _fake_suite(monkeypatch, EPYC_AVX2)

    assert cli.main(["--output", str(output), "--suite", "serving"]) == 0

    written = json.loads(output.read_text())
    assert written["serving"] == earlier["serving"]  # the AMX figures are untouched
    assert written["soak"] == {"x": 1}
    assert written["serving_avx2"]["figures"] == {"summary": {"speedup_c16": 1.0}}


def test_make_bench_on_a_bf16_machine_writes_serving(tmp_path, monkeypatch):
    output = tmp_path / "results.json"
    _fake_suite(monkeypatch, AMX)

    assert cli.main(["--output", str(output), "--suite", "serving"]) == 0

    assert set(json.loads(output.read_text())) == {"serving"}


def test_other_suites_keep_their_own_names():
    assert cli.results_key("operator") == "operator"
    assert cli.results_key("rollouts") == "rollouts"
