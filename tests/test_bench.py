"""Smoke tests of the benchmarks: tiny sizes, the structure of the outputs and their ratio fields.

No timing is asserted (CONVENTIONS.md: benchmarks live in experiments/, never as timed assertions in tests):
only that the frames, summaries and files exist with the documented fields, and that the statistics helpers
(exponent fit, crossover) recover known answers on synthetic data.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch

from kerneltheory import bench
from kerneltheory.commands import bench as bench_cmd


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a loaded machine are far slower with several OpenMP threads; restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_fit_exponent_recovers_a_planted_power_law():
    rng = np.random.default_rng(0)
    n = np.repeat([1e3, 2e3, 4e3, 8e3, 16e3], 5)
    t = 3e-7 * n**1.5 * np.exp(rng.normal(0.0, 0.02, n.size))
    fit = bench.fit_exponent(n, t, boot=400)
    assert fit["points"] == 5
    assert abs(fit["exponent"] - 1.5) < 0.05
    assert fit["ci_low"] <= fit["exponent"] <= fit["ci_high"]
    assert fit["ci_low"] < 1.5 < fit["ci_high"] or abs(fit["exponent"] - 1.5) < 0.02


def test_fit_exponent_needs_two_sizes():
    assert bench.fit_exponent([1000, 1000], [0.1, 0.2])["exponent"] is None


def test_crossover_interpolates_in_log_log():
    assert bench.crossover([1, 10, 100], [0.1, 0.5, 5.0]) == pytest.approx(10 ** (1 + math.log(2) / math.log(10)))
    assert bench.crossover([4, 8], [2.0, 3.0]) == 4.0
    assert bench.crossover([4, 8], [0.2, 0.3]) is None


def test_engine_flop_count_is_the_stated_formula():
    flops = bench.engine_flops_per_draw(pairs=3, dim=5, num_features=7, feature_dim=14)
    assert flops == 4 * 3 * 7 * 5 + 6 * 3 * 14 + 10 * 3


def test_measurement_helpers():
    dev = bench.resolve_device("cpu")
    times = bench.time_call(lambda: torch.ones(10).sum(), dev, repeats=3, warmup=1)
    assert len(times) == 3 and all(t >= 0 for t in times)
    mem = bench.peak_memory(lambda: torch.ones(2**20), dev)
    assert mem is None or (isinstance(mem, int) and mem >= 0)
    assert bench.gemm_rate((8, 8), (8, 8), dtype=torch.float32, device="cpu", repeats=2) > 0
    with pytest.raises(ValueError, match="device"):
        bench.resolve_device("tpu")
    with pytest.raises(ValueError, match="scale"):
        bench.bench_fastfood("huge")


def _check_written(res: bench.BenchResult, out) -> None:
    paths = res.write(out)
    assert set(paths) == {"parquet", "png", "json"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    back = pd.read_parquet(paths["parquet"])
    assert len(back) == len(res.frame) and set(back.columns) == set(res.frame.columns)
    summary = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert summary["benchmark"] == res.name
    assert {"cpu", "nproc", "torch", "torch_threads"} <= summary["machine"].keys()
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_attention_smoke(tmp_path):
    res = bench.bench_attention("smoke", ns=(32, 64), memory_cap=2 * 32 * 32 * 4)
    f = res.frame
    assert {"method", "n", "repeat", "seconds", "peak_bytes", "heads", "head_dim", "num_features"} <= set(f.columns)
    assert set(f.loc[f["method"] == "linear", "n"]) == {32, 64}
    assert set(f.loc[f["method"] == "linear_causal", "n"]) == {32, 64}
    assert set(f.loc[f["method"] == "softmax", "n"]) == {32}  # the memory cap stops it at n = 64
    stop = res.summary["stopped"]["softmax"]
    assert stop["n"] == 64 and "memory cap" in stop["reason"]
    for method in ("linear", "linear_causal"):
        e = res.summary["exponents"][method]
        assert e["points"] == 2 and e["ci_low"] <= e["exponent"] <= e["ci_high"]
    ratios = res.summary["time_ratio_vs_sdpa"]
    assert {"linear/sdpa", "linear_causal/sdpa_causal", "softmax/sdpa"} <= ratios.keys()
    assert all(v > 0 for v in ratios["linear/sdpa"].values())
    assert {"linear_vs_sdpa", "linear_causal_vs_sdpa_causal"} <= res.summary["crossover_n_linear_faster"].keys()
    _check_written(res, tmp_path)


def test_engine_cost_model_is_the_stated_formula():
    # P = d = m = 1, D = 2: 26 useful FLOPs; time 4/4 (GEMM at 4 FLOP/s) + 2·1·2·1 (transcendentals) + 1·1 (W)
    unit = {"w_entry": 1.0, "cos": 1.0, "sin": 1.0}
    assert bench._cost_model_ratio(1, 1, 1, 2, 4.0, unit) == pytest.approx(26 / 6 / 4)


def test_engine_smoke(tmp_path):
    res = bench.bench_engine("smoke")
    f = res.frame
    assert {"engine", "gemm_same_shapes", "python_loop"} <= set(f["method"])
    assert f.loc[f["method"] == "python_loop", "extrapolated"].all()
    (thr,) = res.summary["throughput"]
    assert thr["ratio"] == pytest.approx(thr["engine_gflops"] / thr["gemm_gflops_same_shapes"])
    assert thr["engine_flops_per_draw"] == bench.engine_flops_per_draw(16, 8, 8, 16)
    assert set(thr["unit_ns"]) == {"w_entry", "cos", "sin"} and all(v > 0 for v in thr["unit_ns"].values())
    assert thr["cost_model_ratio"] > 0
    (vs,) = res.summary["vs_loop"]
    assert vs["speedup_vs_loop"] == pytest.approx(vs["loop_s"] / vs["engine_s"])
    assert vs["subset"] < vs["draws"]
    assert vs["speedup_vs_rbf"] == pytest.approx(vs["rbf_s"] / vs["engine_s"])
    _check_written(res, tmp_path)


def test_fastfood_smoke(tmp_path):
    res = bench.bench_fastfood("smoke")
    f = res.frame
    assert set(f["method"]) == {"fastfood", "dense"} and set(f["sweep"]) == {"d", "m"}
    s = res.summary
    assert set(s["ratio_vs_d (m = d)"]) == {8, 16, 32}
    assert all(v > 0 for v in s["ratio_vs_d (m = d)"].values())
    assert "crossover_d" in s and "crossover_m" in s
    # the two paths compute the same x·Wᵀ (float32)
    assert max(s["max_relative_difference_fastfood_vs_dense"].values()) < 1e-4
    _check_written(res, tmp_path)


def test_cli_writes_outputs_and_prints_a_table(tmp_path, capsys):
    assert bench_cmd.main(["fastfood", "--scale", "smoke", "--out", str(tmp_path), "--quiet", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "## fastfood" in out and "dense/fastfood" in out and "crossover_d" in out
    assert {p.name for p in tmp_path.iterdir()} >= {"fastfood.parquet", "fastfood.png", "fastfood.json"}


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_cmd.main(["fastfood", "--scale", "smoke", "--repeats", "0"])
    assert exc.value.code == 2
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exc:
            bench_cmd.main(["engine", "--device", "cuda"])
        assert exc.value.code == 2 and "cuda" in capsys.readouterr().err


def test_register_adds_the_bench_subcommand():
    parser = argparse.ArgumentParser(prog="kerneltheory")
    sub = parser.add_subparsers(dest="command")
    bench_cmd.register(sub)
    args = parser.parse_args(["bench", "attention", "--scale", "quick", "--device", "cpu", "--out", "x"])
    assert args.func is bench_cmd.run_command and args.which == "attention" and args.out == "x"


def test_the_profilers_own_notices_are_dropped_and_other_stderr_kept(capfd):
    """torch.profiler's C++ side writes "... ] profiler_start" / "profiler_stop" to file descriptor 2; the engine
    benchmark drops those two lines only."""
    from kerneltheory.bench import _without_profiler_notices

    with _without_profiler_notices():
        os.write(2, b"USDT:2026 1:1 SyncActivityProfilerHandler.cpp:52] profiler_start\n")
        os.write(2, b"a real warning\n")
        os.write(2, b"USDT:2026 1:1 SyncActivityProfilerHandler.cpp:59] profiler_stop\n")
    err = capfd.readouterr().err
    assert "a real warning" in err and "profiler_st" not in err
