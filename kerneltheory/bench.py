r"""Benchmarks: linear vs softmax attention, the moment engine, Fastfood vs a dense projection.

Every speed claim is a *ratio against a baseline measured in the same run, on the same machine* (CONVENTIONS.md:
benchmarks live in ``experiments/``, never as timed assertions in tests). Each timing is the median of
``repeats`` calls after one untimed call (which also measures peak memory); the methods compared at one
configuration are timed in turns (a, b, a, b, ...), so that a load change on a shared machine hits them alike.
The raw repeats are kept in the tidy frame.

* :func:`bench_attention` (issue 4) — :func:`~kerneltheory.attention.linear_attention` (non-causal and causal,
  FAVOR+ features ``positive/orthogonal``) against :func:`~kerneltheory.attention.softmax_attention` and
  ``torch.nn.functional.scaled_dot_product_attention`` (SDPA, the reference for the ratios), time and peak
  memory against n. Quadratic methods stop at a stated memory cap (``softmax`` only: predicted 2·B·H·n² score
  bytes, the scores and their softmax being alive together; SDPA picks a fused kernel with O(n) memory) or
  time cap (the quadratic extrapolation t(n_prev)·(n/n_prev)² above ``time_cap`` seconds per call). The
  exponent of t ∝ n^α is the least-squares slope of log median time on log n; its 95 % interval is a
  percentile bootstrap that resamples the repeats at each n.
* :func:`bench_engine` — (a) :func:`~kerneltheory.montecarlo.moments` throughput ÷ the rate of ``torch.matmul``
  on the engine's own projection shapes ``[P, d] @ [r, d, m]`` (and a square GEMM, for context). Useful FLOPs
  per draw: 4·P·m·d (the projections x·Wᵀ and y·Wᵀ) + 6·P·D (features: 2 per feature per side, a
  transcendental counted as one; product and sum: 2 per feature) + 10·P (moment update); drawing W is not
  counted. (b) the engine at R draws against a per-draw Python loop over ``est.draw`` and against
  scikit-learn's ``RBFSampler`` refitted per draw, both run on a subset of the draws and extrapolated linearly.
  The throughput is measured for several P (pairs sharing each draw of W): drawing W costs per normal what the
  projections spend on 4·P FLOPs, so the ratio grows with P. Engine blocks: the largest power of two ≤ 1024
  draws whose W fits ``block_bytes`` (8 MiB); ``sample_estimates`` then evaluates the features in chunks that
  stay in cache (its ``chunk_bytes``), so the block sets only how often the RNG is reseeded.
* :func:`bench_fastfood` — :meth:`Fastfood.project` (O(m log d) per input) against the dense ``x @ Wᵀ`` with
  the same W, time vs d (m = d) and vs m (d fixed), and the crossover (log-log interpolation of the ratio).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` minus the allocation before the call; on the CPU the
growth of the process's resident high-water mark (``VmHWM`` after resetting it through
``/proc/self/clear_refs``, minus ``VmRSS`` before), which misses memory the allocator reuses from earlier
calls (None where /proc is unavailable).

Example:
    >>> from kerneltheory.bench import bench_fastfood
    >>> res = bench_fastfood("smoke")                               # doctest: +SKIP
    >>> res.write("experiments/bench")                              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .io import save_figure_atomic, write_json_atomic, write_parquet_atomic, write_text_atomic

__all__ = [
    "BENCHMARKS",
    "SCALES",
    "BenchResult",
    "bench_attention",
    "bench_engine",
    "bench_fastfood",
    "crossover",
    "engine_flops_per_draw",
    "fit_exponent",
    "gemm_rate",
    "machine_info",
    "peak_memory",
    "resolve_device",
    "run",
    "time_call",
]

SCALES = ("smoke", "quick", "full")
GiB = 2**30
Log = Callable[[str], None] | None


# ---------------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"`` or ``"cuda"`` (``"cuda:i"``) as a device; CUDA must be available."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch.cuda.is_available() is False")
    return dev


def _check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 0, cpu: list | None = None
) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` (after ``warmup`` untimed calls), synchronising CUDA
    before and after each call. ``cpu``: a list that receives each call's CPU time of this process
    (``time.process_time``: all its threads, user + system), which a loaded machine inflates far less than
    wall time (time spent descheduled is not counted)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        _sync(device)
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    return out


def _proc_status(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_memory(fn: Callable[[], object], device: torch.device) -> int | None:
    """Bytes of peak memory one call of ``fn`` adds (see the module docstring); None if unmeasurable.

    The young generations are collected first (the previous call's cyclic garbage; a full collection costs
    ~0.2 s in a process that has imported scipy.stats, more than the calls it precedes) and the collector is
    off during the call, so no collection can free memory that the call's allocations would then reuse."""
    gc.collect(1)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _peak_memory(fn, device)
    finally:
        if enabled:
            gc.enable()


def _peak_memory(fn: Callable[[], object], device: torch.device) -> int | None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return int(peak)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        fn()
        return None
    base = _proc_status("VmRSS")
    out = fn()
    hwm = _proc_status("VmHWM")
    del out
    return None if base is None or hwm is None else max(0, hwm - base)


def machine_info(device: torch.device | str = "cpu") -> dict:
    """The machine the numbers come from: CPU model, cores, torch version and threads, load, GPU name."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    info = {
        "cpu": model,
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": str(device),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


# ---------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------


def fit_exponent(
    n, seconds, *, level: float = 0.95, boot: int = 2000, seed: int = 0
) -> dict[str, float | int | None]:
    """α in t ∝ n^α: the least-squares slope of log(median t) on log n over the distinct n, with a percentile
    bootstrap interval (resampling the repeats at each n, ``boot`` times). ``n`` and ``seconds`` are paired
    1-D sequences (one entry per repeat). Fewer than two distinct n give None."""
    frame = pd.DataFrame({"n": np.asarray(n, dtype=float), "t": np.asarray(seconds, dtype=float)})
    groups = [g["t"].to_numpy() for _, g in frame.groupby("n")]
    xs = np.log(np.sort(frame["n"].unique()))
    if len(xs) < 2:
        return {"exponent": None, "ci_low": None, "ci_high": None, "points": len(xs)}
    slope = float(np.polyfit(xs, np.log([np.median(g) for g in groups]), 1)[0])
    rng = np.random.default_rng(seed)
    # all resamples at once: [boot, points] medians, then each row's least-squares slope on xs in closed form
    meds = np.stack([np.median(g[rng.integers(0, len(g), size=(boot, len(g)))], axis=1) for g in groups], axis=1)
    xc = xs - xs.mean()
    logs = np.log(meds)
    boots = (logs - logs.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return {"exponent": slope, "ci_low": float(lo), "ci_high": float(hi), "points": len(xs)}


def crossover(x, ratio) -> float | None:
    """The x where ``ratio`` (baseline time ÷ method time) first reaches 1, interpolated in log-log between
    the bracketing points; x[0] if it starts ≥ 1, None if it never does."""
    x, ratio = np.asarray(x, dtype=float), np.asarray(ratio, dtype=float)
    ok = np.isfinite(ratio)
    x, ratio = x[ok], ratio[ok]
    for i, r in enumerate(ratio):
        if r >= 1:
            if i == 0:
                return float(x[0])
            lx, lr = np.log(x[i - 1 : i + 1]), np.log(ratio[i - 1 : i + 1])
            return float(np.exp(lx[0] + (0 - lr[0]) * (lx[1] - lx[0]) / (lr[1] - lr[0])))
    return None


def _gemm_call(shape_a, shape_b, *, dtype, device, seed: int = 0) -> tuple[float, Callable[[], object]]:
    """(FLOPs of one ``torch.matmul`` of ``[.., M, K] @ [.., K, N]``, a zero-argument call doing it)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(shape_a, generator=g, dtype=dtype).to(device)
    b = torch.randn(shape_b, generator=g, dtype=dtype).to(device)
    batch = math.prod(torch.broadcast_shapes(shape_a[:-2], shape_b[:-2]))
    return 2.0 * batch * shape_a[-2] * shape_a[-1] * shape_b[-1], partial(torch.matmul, a, b)


def gemm_rate(shape_a, shape_b, *, dtype, device, repeats: int = 5, seed: int = 0) -> float:
    """Median FLOP/s of ``torch.matmul`` on ``[.., M, K] @ [.., K, N]`` (2·M·N·K per product, broadcast)."""
    dev = resolve_device(device)
    flops, fn = _gemm_call(shape_a, shape_b, dtype=dtype, device=dev, seed=seed)
    return flops / float(np.median(time_call(fn, dev, repeats, warmup=1)))


def _interleaved(
    fns: dict[str, Callable[[], object]], device, repeats: int, inner: dict[str, int] | None = None,
    cpu: dict[str, list[float]] | None = None,
):
    """Wall seconds per call of each function, timed in turns (a, b, a, b, ...) so that a load change on a shared
    machine hits every method alike; ``inner[name]`` calls per turn give that turn's median. ``cpu`` (a dict)
    receives the CPU seconds per call of each turn, name → list, beside the wall times."""
    inner = inner or {}
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            cpu_turn: list[float] = []
            out[name].append(float(np.median(time_call(fn, device, inner.get(name, 1), cpu=cpu_turn))))
            if cpu is not None:
                cpu.setdefault(name, []).append(float(np.median(cpu_turn)))
    return out


def engine_flops_per_draw(pairs: int, dim: int, num_features: int, feature_dim: int) -> int:
    """Useful FLOPs of one draw of the engine (module docstring): 4·P·m·d + 6·P·D + 10·P."""
    return 4 * pairs * num_features * dim + 6 * pairs * feature_dim + 10 * pairs


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """A benchmark's tidy frame (one row per repeat), its JSON summary, its figure and its table."""

    name: str
    frame: pd.DataFrame
    summary: dict
    table: pd.DataFrame
    plot: Callable[[pd.DataFrame], object] = field(repr=False)
    paths: dict[str, Path] = field(default_factory=dict)

    def figure(self):
        return self.plot(self.frame)

    def write(self, out: str | os.PathLike) -> dict[str, Path]:
        """Write ``<name>.parquet``, ``<name>.png``, ``<name>.json`` under ``out``, each atomically."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {k: out / f"{self.name}.{k}" for k in ("parquet", "png", "json")}
        write_parquet_atomic(self.frame, paths["parquet"])
        fig = self.figure()
        save_figure_atomic(fig, paths["png"], dpi=120, bbox_inches="tight")
        write_json_atomic(paths["json"], self.summary)
        write_text_atomic(out / f"{self.name}.txt", self.table.to_string(index=False) + "\n")
        return paths


def _median_table(frame: pd.DataFrame, keys: list[str], value: str = "seconds") -> pd.DataFrame:
    return frame.groupby(keys, sort=True)[value].median().reset_index()


def _figure(ncols: int, width: float = 6.5):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, 4.2))
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _say(log: Log, msg: str) -> None:
    if log is not None:
        log(msg)


# ---------------------------------------------------------------------------------------------------
# (d) issue 4: linear vs softmax attention
# ---------------------------------------------------------------------------------------------------

ATTENTION_SCALES = {
    "smoke": dict(ns=(64, 128, 256), heads=1, head_dim=8, num_features=16, repeats=2,
                  memory_cap=2**24, time_cap=5.0),
    "quick": dict(ns=tuple(2**k for k in range(10, 17)), heads=1, head_dim=64, num_features=256, repeats=3,
                  memory_cap=1 * GiB, time_cap=10.0),
    "full": dict(ns=tuple(2**k for k in range(10, 17)), heads=1, head_dim=64, num_features=256, repeats=7,
                 memory_cap=16 * GiB, time_cap=120.0),
}
QUADRATIC = ("softmax", "sdpa", "sdpa_causal")
# (method, baseline) pairs whose time ratio the summary reports, on wall and on CPU time
ATTENTION_RATIOS = (("linear", "sdpa"), ("linear_causal", "sdpa_causal"), ("softmax", "sdpa"),
                    ("linear", "minimal"), ("linear_causal", "minimal_causal"),
                    ("performer_causal", "linear_causal"))


def minimal_favor(q, k, v, w, causal: bool = False, chunk: int = 128) -> torch.Tensor:
    """The baseline of the linear-attention ratios: FAVOR+ (positive features, h = exp(−‖x‖²/2)) written with
    nothing but the necessary work, no validation, no masks, features of all n at once, one max per query and
    one per sequence (legal, though it can underflow where the library's stabiliser does not), and two GEMMs
    with [v | 1] (non-causal: φ(K)ᵀ[V | 1] then φ(Q)·that; causal: the same per chunk plus the L×L block)."""
    lq = q @ w.transpose(-1, -2) - 0.5 * (q * q).sum(-1, keepdim=True)
    lk = k @ w.transpose(-1, -2) - 0.5 * (k * k).sum(-1, keepdim=True)
    fq = torch.exp(lq - lq.amax(-1, keepdim=True))
    fk = torch.exp(lk - lk.amax((-2, -1), keepdim=True))
    va = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
    if not causal:
        out = fq @ (fk.transpose(-1, -2) @ va)
    else:
        state = v.new_zeros(*v.shape[:-2], w.shape[-2], v.shape[-1] + 1)
        outs = []
        for a in range(0, q.shape[-2], chunk):
            fqc, fkc, vc = fq[..., a:a + chunk, :], fk[..., a:a + chunk, :], va[..., a:a + chunk, :]
            outs.append(fqc @ state + (fqc @ fkc.transpose(-1, -2)).tril() @ vc)
            state = state + fkc.transpose(-1, -2) @ vc
        out = torch.cat(outs, dim=-2)
    return out[..., :-1] / out[..., -1:]


def performer_causal(w) -> Callable | None:
    """performer-pytorch's CPU causal path (``softmax_kernel`` features, ``causal_linear_attention_noncuda``)
    with the same W, or None when the package is not installed (a benchmark-only baseline, never imported by
    the library or its tests)."""
    try:
        from performer_pytorch.performer_pytorch import causal_linear_attention_noncuda, softmax_kernel
    except ImportError:
        return None

    def call(q, k, v):
        fq = softmax_kernel(q, projection_matrix=w, is_query=True)
        fk = softmax_kernel(k, projection_matrix=w, is_query=False)
        return causal_linear_attention_noncuda(fq, fk, v)

    return call


def bench_attention(
    scale: str = "quick", device: str | torch.device = "cpu", *, ns=None, heads: int | None = None,
    head_dim: int | None = None, num_features: int | None = None, batch: int = 1, repeats: int | None = None,
    memory_cap: int | None = None, time_cap: float | None = None, estimator: str = "positive/orthogonal",
    dtype: torch.dtype = torch.float32, seed: int = 0, log: Log = None, methods=None,
) -> BenchResult:
    """Time and peak memory of linear (``linear``, ``linear_causal``), softmax (``softmax``: the package's
    quadratic reference) and SDPA (``sdpa``, ``sdpa_causal``) attention on ``[batch, heads, n, head_dim]``
    against n; exponents, ratios to SDPA, and where each quadratic method stopped and why. Baselines of the
    linear methods: :func:`minimal_favor` (``minimal``, ``minimal_causal``) with the same W, and
    performer-pytorch's causal path (``performer_causal``) when it is installed. ``methods``: run only these.
    Every repeat records wall and CPU seconds; the ratios are reported on both."""
    from .attention import linear_attention, softmax_attention
    from .estimators import get

    dev = resolve_device(device)
    cfg = dict(ATTENTION_SCALES[_check_scale(scale)])
    for key, val in dict(ns=ns, heads=heads, head_dim=head_dim, num_features=num_features, repeats=repeats,
                         memory_cap=memory_cap, time_cap=time_cap).items():
        if val is not None:
            cfg[key] = val
    h, d, reps = cfg["heads"], cfg["head_dim"], cfg["repeats"]
    fm = get(estimator, dim=d, num_features=cfg["num_features"], dtype=dtype, device=dev).draw(
        torch.Generator().manual_seed(seed)
    )
    itemsize = torch.finfo(dtype).bits // 8
    sdpa = torch.nn.functional.scaled_dot_product_attention
    methods_all: dict[str, Callable] = {
        "linear": lambda q, k, v: linear_attention(q, k, v, fm),
        "linear_causal": lambda q, k, v: linear_attention(q, k, v, fm, causal=True),
        "softmax": lambda q, k, v: softmax_attention(q, k, v),
        "sdpa": lambda q, k, v: sdpa(q, k, v),
        "sdpa_causal": lambda q, k, v: sdpa(q, k, v, is_causal=True),
    }
    if estimator.startswith("positive/"):  # the minimal baseline computes these features
        w = fm.w
        methods_all["minimal"] = lambda q, k, v: minimal_favor(q, k, v, w)
        methods_all["minimal_causal"] = lambda q, k, v: minimal_favor(q, k, v, w, causal=True)
        perf = performer_causal(w)
        if perf is not None:
            methods_all["performer_causal"] = perf
    if methods is not None:
        unknown = set(methods) - set(methods_all)
        if unknown:
            raise ValueError(f"methods must be among {sorted(methods_all)}, got {sorted(unknown)}")
    methods_run = {k: f for k, f in methods_all.items() if methods is None or k in methods}
    rows, stopped, last = [], {}, {}
    for n in sorted(cfg["ns"]):
        g = torch.Generator().manual_seed(seed + n)
        # q, k scaled by d^{-1/4}: linear attention with FAVOR+ then estimates softmax attention (MATH.md §5)
        q, k, v = (torch.randn(batch, h, n, d, generator=g, dtype=dtype).to(dev) for _ in range(3))
        q, k = q * d**-0.25, k * d**-0.25
        calls, mems = {}, {}
        for name, fn in methods_run.items():
            if name in stopped:
                continue
            if name == "softmax" and 2 * batch * h * n * n * itemsize > cfg["memory_cap"]:
                stopped[name] = {"n": n, "reason": f"predicted 2·B·H·n² = {2 * batch * h * n * n * itemsize / GiB:.2f}"
                                 f" GiB of scores > memory cap {cfg['memory_cap'] / GiB:.2f} GiB"}
                continue
            if name in QUADRATIC and name in last:
                n0, t0 = last[name]
                pred = t0 * (n / n0) ** 2
                if pred > cfg["time_cap"]:
                    stopped[name] = {"n": n, "reason": f"predicted {pred:.1f} s per call > time cap "
                                     f"{cfg['time_cap']:.0f} s"}
                    continue
            calls[name] = partial(fn, q, k, v)
            mems[name] = peak_memory(calls[name], dev)  # also the warm-up
        cpu: dict[str, list[float]] = {}
        for name, times in _interleaved(calls, dev, reps, cpu=cpu).items():
            last[name] = (n, float(np.median(times)))
            _say(log, f"attention {name:16s} n={n:6d} median {last[name][1]:.4f} s (CPU "
                      f"{np.median(cpu[name]):.4f} s)  peak {mems[name]} B")
            rows += [dict(method=name, n=n, repeat=i, seconds=t, cpu_seconds=cpu[name][i], peak_bytes=mems[name])
                     for i, t in enumerate(times)]
        del q, k, v
    frame = pd.DataFrame(rows).assign(
        benchmark="attention", batch=batch, heads=h, head_dim=d, num_features=cfg["num_features"],
        dtype=str(dtype).removeprefix("torch."), device=str(dev),
    )
    frame["peak_bytes"] = frame["peak_bytes"].astype("Int64")
    med = frame.groupby(["method", "n"])["seconds"].median().unstack("method")
    med_cpu = frame.groupby(["method", "n"])["cpu_seconds"].median().unstack("method")
    ratios, ratios_cpu = {}, {}
    for method, base in ATTENTION_RATIOS:
        if method in med and base in med:
            r, rc = (med[method] / med[base]).dropna(), (med_cpu[method] / med_cpu[base]).dropna()
            ratios[f"{method}/{base}"] = {int(n): float(x) for n, x in r.items()}
            ratios_cpu[f"{method}/{base}"] = {int(n): float(x) for n, x in rc.items()}
    exps = {m: fit_exponent(g["n"], g["seconds"], seed=seed) for m, g in frame.groupby("method")}
    exps_cpu = {m: fit_exponent(g["n"], g["cpu_seconds"], seed=seed) for m, g in frame.groupby("method")}
    cross = {}
    for method, base in (("linear", "sdpa"), ("linear_causal", "sdpa_causal")):
        if method in med and base in med:
            sp = (med[base] / med[method]).dropna()
            cross[f"{method}_vs_{base}"] = crossover(sp.index, sp.to_numpy())
    summary = {
        "benchmark": "attention", "scale": scale, "machine": machine_info(dev),
        "settings": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}, "batch": batch,
                     "estimator": estimator, "dtype": str(dtype), "seed": seed},
        "exponents": exps, "exponents_cpu": exps_cpu, "time_ratios": ratios,
        "time_ratio_vs_sdpa": {k: r for k, r in ratios.items() if "/sdpa" in k},
        "cpu_time_ratios": ratios_cpu, "crossover_n_linear_faster": cross,
        "stopped": stopped, "largest_n": {m: int(g["n"].max()) for m, g in frame.groupby("method")},
        "peak_bytes": {m: {int(n): (None if pd.isna(b) else int(b)) for n, b in g.groupby("n")["peak_bytes"].first()
                           .items()} for m, g in frame.groupby("method")},
        "memory_model": "softmax keeps the n×n scores and their softmax alive together: 2·B·H·n²·itemsize bytes",
    }
    table = med.rename(columns=lambda c: f"{c} s")
    for method, base in ATTENTION_RATIOS:
        if method in med and base in med and method != "softmax":
            table[f"{method}/{base}"] = med[method] / med[base]
            table[f"{method}/{base} CPU"] = med_cpu[method] / med_cpu[base]
    mem = frame.groupby(["n", "method"])["peak_bytes"].first().astype("float").unstack("method") / 2**20
    table = table.join(mem.rename(columns=lambda c: f"{c} MiB")).reset_index()
    return BenchResult("attention", frame, summary, table, _plot_attention)


def _plot_attention(frame: pd.DataFrame):
    import seaborn as sns

    fig, (ax1, ax2) = _figure(2)
    order = [m for m in ("linear", "linear_causal", "softmax", "sdpa", "sdpa_causal", "minimal", "minimal_causal",
                         "performer_causal") if m in set(frame["method"])]
    style = dict(hue="method", hue_order=order, palette=dict(zip(order, sns.color_palette("tab10"), strict=False)),
                 marker="o")
    sns.lineplot(data=frame, x="n", y="seconds", estimator="median", errorbar=("pi", 100), ax=ax1, **style)
    ax1.set(xscale="log", yscale="log", title="time per call (median; band: min–max)")
    mem = frame.groupby(["method", "n"])["peak_bytes"].first().reset_index().dropna()
    mem["peak MiB"] = np.maximum(mem["peak_bytes"].astype(float) / 2**20, 1e-3)
    sns.lineplot(data=mem, x="n", y="peak MiB", ax=ax2, **style)
    ax2.set(xscale="log", yscale="log", title="peak memory added (1 KiB floor: none seen)")
    fig.suptitle(f"attention on {frame['device'].iloc[0]} ({frame['dtype'].iloc[0]}, d={frame['head_dim'].iloc[0]},"
                 f" H={frame['heads'].iloc[0]}, D={frame['num_features'].iloc[0]})")
    return fig


# ---------------------------------------------------------------------------------------------------
# (a), (b): the moment engine
# ---------------------------------------------------------------------------------------------------

ENGINE_SCALES = {
    "smoke": dict(shapes=((8, 8),), pairs=(16,), flop_target=2e6, block_bytes=2**20, loop_shapes=((4, 8, 8),),
                  loop_draws=64, loop_subset=16, repeats=2),
    "quick": dict(shapes=((64, 64), (256, 256), (512, 512)), pairs=(256, 1024, 4096), flop_target=5e9,
                  block_bytes=2**23, loop_shapes=((2, 4, 4), (4, 16, 16), (16, 64, 64), (64, 256, 256)),
                  loop_draws=10_000, loop_subset=200, repeats=3),
    "full": dict(shapes=((64, 64), (128, 128), (256, 256), (512, 512), (1024, 1024)), pairs=(256, 1024, 4096),
                 flop_target=5e10, block_bytes=2**23,
                 loop_shapes=((2, 4, 4), (4, 16, 16), (16, 64, 64), (64, 256, 256)),
                 loop_draws=10_000, loop_subset=1000, repeats=5),
}


def _pairs(p: int, d: int, seed: int, dtype, dev) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p, d, generator=g, dtype=dtype) / math.sqrt(d)
    y = x + 0.5 * torch.randn(p, d, generator=g, dtype=dtype) / math.sqrt(d)
    return x.to(dev), y.to(dev)


@contextlib.contextmanager
def _without_profiler_notices():
    """Drop the profiler's own "profiler_start" / "profiler_stop" lines, which its C++ side writes to file
    descriptor 2, and pass every other line written there meanwhile on to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not re.search(r"\] profiler_(start|stop)\s*$", line)]
            if kept:
                sys.stderr.write("".join(kept))


def _profile_shares(fn: Callable[[], object], top: int = 8, calls: int = 3) -> dict[str, float]:
    """Share of self CPU time per aten op over ``calls`` calls of ``fn`` (torch.profiler), the ``top`` largest."""
    from torch.profiler import ProfilerActivity, profile

    with _without_profiler_notices(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    rows = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in rows) or 1.0
    return {k: round(t / total, 4) for k, t in sorted(rows, key=lambda kv: -kv[1])[:top]}


def _block_for(num_features: int, dim: int, dtype: torch.dtype, budget: int) -> int:
    """Draws per engine block: the largest power of two ≤ 1024 whose W, ``[r, m, d]``, fits ``budget`` bytes
    (``sample_estimates`` keeps its feature tensors in cache by itself, whatever the block)."""
    per_draw = num_features * dim * (torch.finfo(dtype).bits // 8)
    return max(1, min(1024, 2 ** int(math.floor(math.log2(max(1, budget // per_draw))))))


def _unit_costs(est, block: int, dtype, dev, repeats: int, seed: int) -> dict[str, float]:
    """Seconds per element of the engine's three non-GEMM kernels, measured in this run: one entry of W drawn
    by the law (``law.sample`` for ``block`` draws), one ``cos`` and one ``sin`` (on 2¹⁷ values in [−4, 4])."""
    g = torch.Generator().manual_seed(seed)
    draw = partial(est.law.sample, est.num_features, g, batch=block)
    u = (8 * torch.rand(2**17, generator=g, dtype=torch.float64) - 4).to(device=dev, dtype=dtype)
    out = {"w_entry": float(np.median(time_call(draw, dev, repeats, warmup=1))) / (block * est.num_features * est.dim)}
    for name, fn in (("cos", torch.cos), ("sin", torch.sin)):
        out[name] = float(np.median(time_call(partial(fn, u), dev, 5 * repeats, warmup=1))) / u.numel()
    return out


def _cost_model_ratio(pairs: int, dim: int, m: int, feature_dim: int, gemm_rate_: float, unit: dict) -> float:
    """The engine ÷ GEMM rate predicted from three costs alone: per draw the projections take 4·P·m·d / rate,
    the 2·P·D features (one cos or sin per feature per side) 2·P·D·c_trig, W m·d·c_W; everything else
    (products, sums, moments, Python) is taken as free. It is a prediction, not a bound: the engine's chunked
    products can run faster or slower than the one same-shape GEMM that gives ``rate``."""
    flops = engine_flops_per_draw(pairs, dim, m, feature_dim)
    t = 4 * pairs * m * dim / gemm_rate_ + 2 * pairs * feature_dim * (unit["cos"] + unit["sin"]) / 2
    t += m * dim * unit["w_entry"]
    return flops / t / gemm_rate_


def _engine(est, x, y, draws: int, block: int, seed: int, dev):
    """The engine under test: ``moments`` over ``est.sample_estimates`` (all draws of a block in one op)."""
    from .montecarlo import moments

    return moments(lambda g, r: est.sample_estimates(x, y, g, r), draws, seed=seed, block=block, device=dev)


def _loop_moments(est, x, y, draws: int, seed: int):
    """The naive baseline: one ``est.draw`` and one evaluation per draw in Python, then the moments."""
    from .montecarlo import Moments

    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(draws):
        fx, fy = est.draw(g).pair(x, y)
        vals.append((fx * fy).sum(-1))
    return Moments.from_samples(torch.stack(vals))


def _rbf_moments(x: np.ndarray, y: np.ndarray, num_features: int, gamma: float, draws: int, seed: int):
    """scikit-learn's RBFSampler refitted per draw (√(2/m) cos(ωᵀx + b), ω ~ N(0, 2γI)), then the moments."""
    from sklearn.kernel_approximation import RBFSampler

    from .montecarlo import Moments

    vals = np.empty((draws, x.shape[0]))
    for r in range(draws):
        s = RBFSampler(gamma=gamma, n_components=num_features, random_state=seed + r).fit(x)
        vals[r] = (s.transform(x) * s.transform(y)).sum(1)
    return Moments.from_samples(torch.from_numpy(vals))


def bench_engine(
    scale: str = "quick", device: str | torch.device = "cpu", *, shapes=None, pairs: int | None = None,
    repeats: int | None = None, estimator: str = "trig/gaussian", dtype: torch.dtype = torch.float64,
    seed: int = 0, log: Log = None,
) -> BenchResult:
    """(a) engine FLOP/s ÷ same-shape GEMM FLOP/s per (d, m); (b) engine vs a per-draw loop and vs
    RBFSampler refitted per draw at R draws (``trig_phase/gaussian``, the map RBFSampler computes)."""
    from .estimators import get

    dev = resolve_device(device)
    cfg = dict(ENGINE_SCALES[_check_scale(scale)])
    for key, val in dict(shapes=shapes, pairs=pairs, repeats=repeats).items():
        if val is not None:
            cfg[key] = val
    reps = cfg["repeats"]
    if isinstance(cfg["pairs"], int):
        cfg["pairs"] = (cfg["pairs"],)
    rows, throughput, profiles = [], [], {}
    square = 2048 if dev.type == "cuda" else 1024
    peak_square = gemm_rate((square, square), (square, square), dtype=dtype, device=dev, repeats=reps)
    for (d, m), p in ((shape, p) for shape in cfg["shapes"] for p in cfg["pairs"]):
        est = get(estimator, dim=d, num_features=m, dtype=dtype, device=dev)
        x, y = _pairs(p, d, seed, dtype, dev)
        per_draw = engine_flops_per_draw(p, d, m, est.feature_dim)
        block = _block_for(m, d, dtype, cfg["block_bytes"])
        draws = max(block, int(round(cfg["flop_target"] / per_draw / block)) * block)
        gemm_flops, gemm = _gemm_call((p, d), (block, d, m), dtype=dtype, device=dev, seed=seed)
        _engine(est, x, y, block, block, seed, dev)  # warm-ups: one block, one product
        time_call(gemm, dev, 2)
        cpu: dict[str, list[float]] = {}
        turns = _interleaved({"engine": partial(_engine, est, x, y, draws, block, seed, dev), "gemm": gemm}, dev,
                             reps, inner={"gemm": 5}, cpu=cpu)
        t_eng, t_gemm = turns["engine"], turns["gemm"]
        rate_gemm = gemm_flops / float(np.median(t_gemm))
        rows += [dict(part="throughput", method="gemm_same_shapes", dim=d, num_features=m, pairs=p, draws=block,
                      repeat=i, seconds=t, cpu_seconds=cpu["gemm"][i], flops=gemm_flops, extrapolated=False)
                 for i, t in enumerate(t_gemm)]
        if dev.type == "cpu":
            profiles[f"d={d},m={m},P={p}"] = _profile_shares(partial(est.sample_estimates, x, y,
                                                               torch.Generator().manual_seed(seed), block))
        unit = _unit_costs(est, block, dtype, dev, reps, seed)
        rate_eng = per_draw * draws / float(np.median(t_eng))
        _say(log, f"engine d={d} m={m} P={p}: {rate_eng / 1e9:.2f} GFLOP/s vs GEMM {rate_gemm / 1e9:.2f} GFLOP/s")
        rows += [dict(part="throughput", method="engine", dim=d, num_features=m, pairs=p, draws=draws, repeat=i,
                      seconds=t, cpu_seconds=cpu["engine"][i], flops=per_draw * draws, extrapolated=False)
                 for i, t in enumerate(t_eng)]
        throughput.append(dict(dim=d, num_features=m, pairs=p, draws=draws, block=block,
                               engine_flops_per_draw=per_draw, engine_gflops=rate_eng / 1e9,
                               gemm_gflops_same_shapes=rate_gemm / 1e9, ratio=rate_eng / rate_gemm,
                               ratio_vs_square_gemm=rate_eng / peak_square,
                               unit_ns={k: v * 1e9 for k, v in unit.items()},
                               cost_model_ratio=_cost_model_ratio(p, d, m, est.feature_dim, rate_gemm, unit),
                               target_met=(rate_eng / rate_gemm >= 0.5) if min(d, m) >= 256 else None))
    speedups = []
    for d, m, pp in cfg["loop_shapes"]:
        est = get("trig_phase/gaussian", dim=d, num_features=m, dtype=dtype, device=dev)
        x, y = _pairs(pp, d, seed, dtype, dev)
        big, sub = cfg["loop_draws"], cfg["loop_subset"]
        block = _block_for(m, d, dtype, cfg["block_bytes"])
        fns = {"engine": partial(_engine, est, x, y, big, block, seed, dev),
               "loop": partial(_loop_moments, est, x, y, sub, seed)}
        xn, yn = x.cpu().numpy(), y.cpu().numpy()
        fns["rbf"] = partial(_rbf_moments, xn, yn, m, 0.5, sub, seed)
        _engine(est, x, y, block, block, seed, dev)  # warm-ups: one block, a few draws of each loop
        _loop_moments(est, x, y, 2, seed)
        _rbf_moments(xn, yn, m, 0.5, 2, seed)
        turns = _interleaved(fns, dev, reps)
        t_eng, t_loop, t_rbf = turns["engine"], turns["loop"], turns["rbf"]
        result = dict(dim=d, num_features=m, pairs=pp, draws=big, block=block, subset=sub,
                      engine_s=float(np.median(t_eng)), loop_s=float(np.median(t_loop)) * big / sub)
        for i, t in enumerate(t_eng):
            rows.append(dict(part="vs_loop", method="engine", dim=d, num_features=m, pairs=pp, draws=big, repeat=i,
                             seconds=t, flops=None, extrapolated=False))
        for i, t in enumerate(t_loop):
            rows.append(dict(part="vs_loop", method="python_loop", dim=d, num_features=m, pairs=pp, draws=big,
                             repeat=i, seconds=t * big / sub, flops=None, extrapolated=True))
        result["rbf_s"] = float(np.median(t_rbf)) * big / sub
        rows += [dict(part="vs_loop", method="sklearn_rbf", dim=d, num_features=m, pairs=pp, draws=big,
                      repeat=i, seconds=t * big / sub, flops=None, extrapolated=True) for i, t in enumerate(t_rbf)]
        result["speedup_vs_loop"] = result["loop_s"] / result["engine_s"]
        result["speedup_vs_rbf"] = result["rbf_s"] / result["engine_s"]
        result["target_met"] = result["speedup_vs_loop"] >= 100 and result["speedup_vs_rbf"] >= 100
        _say(log, f"engine vs loops d={d} m={m} P={pp}: ×{result['speedup_vs_loop']:.0f} loop, "
             f"×{result['speedup_vs_rbf']:.0f} RBFSampler")
        speedups.append(result)
    frame = pd.DataFrame(rows).assign(benchmark="engine", dtype=str(dtype).removeprefix("torch."), device=str(dev))
    frame["flops"] = frame["flops"].astype("float")
    summary = {
        "benchmark": "engine", "scale": scale, "machine": machine_info(dev),
        "settings": {**{k: (list(map(list, v)) if k.endswith("shapes") else v) for k, v in cfg.items()},
                     "estimator_throughput": estimator, "estimator_vs_loop": "trig_phase/gaussian",
                     "rbf_gamma": 0.5, "dtype": str(dtype), "seed": seed},
        "flop_count": "per draw: 4·P·m·d (x·Wᵀ and y·Wᵀ) + 6·P·D (features 2/feature/side, product+sum 2/feature)"
                      " + 10·P (moments); drawing W not counted",
        "cost_model": "cost_model_ratio: the ratio predicted from the GEMM rate, 2·P·D transcendentals and m·d"
                      " entries of W per draw at the unit costs unit_ns measured in this run (all else free)",
        "square_gemm_gflops": peak_square / 1e9, "square_gemm_size": square,
        "throughput": throughput, "vs_loop": speedups,
        "profile_self_cpu_share": profiles or "CPU only (torch.profiler self CPU time of one block's estimates)",
        "extrapolation": "python_loop and sklearn_rbf are timed on `subset` draws and scaled by draws/subset",
    }
    table = pd.concat([pd.DataFrame(throughput)[["dim", "num_features", "pairs", "engine_gflops",
                                                  "gemm_gflops_same_shapes", "ratio", "cost_model_ratio"]],
                       pd.DataFrame(speedups)[["dim", "num_features", "pairs", "draws", "engine_s", "loop_s", "rbf_s",
                                               "speedup_vs_loop", "speedup_vs_rbf"]]], keys=["(a)", "(b)"])
    return BenchResult("engine", frame, summary, table.reset_index(level=0, names=["part"]), _plot_engine)


def _plot_engine(frame: pd.DataFrame):
    import seaborn as sns

    fig, (ax1, ax2) = _figure(2)
    thr = frame[frame["part"] == "throughput"].copy()
    thr["GFLOP/s"] = thr["flops"] / thr["seconds"] / 1e9
    thr["shape"] = thr["dim"].astype(str) + "\n" + thr["pairs"].astype(str)
    sns.barplot(data=thr, x="shape", y="GFLOP/s", hue="method", estimator="median", errorbar=("pi", 100), ax=ax1)
    ax1.set(title="(a) GFLOP/s: engine vs matmul, same shapes", xlabel="d = m (top), pairs P (bottom)")
    vs = frame[frame["part"] == "vs_loop"].copy()
    vs["shape"] = "d=" + vs["dim"].astype(str) + "\nm=" + vs["num_features"].astype(str) + \
        "\nP=" + vs["pairs"].astype(str)
    sns.barplot(data=vs, x="shape", y="seconds", hue="method", estimator="median", errorbar=("pi", 100), ax=ax2)
    ax2.set(yscale="log", title=f"(b) time for R={int(vs['draws'].max()) if len(vs) else 0} draws (loops extrap.)")
    return fig


# ---------------------------------------------------------------------------------------------------
# (c) Fastfood vs dense projection
# ---------------------------------------------------------------------------------------------------

FASTFOOD_SCALES = {
    "smoke": dict(dims=(8, 16, 32), m_dim=16, ms=(8, 32), n=32, repeats=2),
    "quick": dict(dims=(16, 64, 256, 1024, 2048, 4096), m_dim=1024, ms=(64, 256, 1024, 4096), n=1024, repeats=5),
    "full": dict(dims=tuple(2**k for k in range(4, 14)), m_dim=1024, ms=tuple(2**k for k in range(5, 14)), n=4096,
                 repeats=9),
}


def bench_fastfood(
    scale: str = "quick", device: str | torch.device = "cpu", *, dims=None, ms=None, m_dim: int | None = None,
    n: int | None = None, repeats: int | None = None, dtype: torch.dtype = torch.float32, seed: int = 0,
    log: Log = None,
) -> BenchResult:
    """``Fastfood.project`` (two fast Walsh–Hadamard transforms per block) against ``x @ Wᵀ`` with the same
    dense W, for n inputs: sweep ``d`` with m = d, and sweep ``m`` at d = ``m_dim``; crossovers."""
    from .spectral.fastfood import Fastfood, fastfood_matrix

    dev = resolve_device(device)
    cfg = dict(FASTFOOD_SCALES[_check_scale(scale)])
    for key, val in dict(dims=dims, ms=ms, m_dim=m_dim, n=n, repeats=repeats).items():
        if val is not None:
            cfg[key] = val
    cases = [("d", d, d) for d in cfg["dims"]] + [("m", cfg["m_dim"], m) for m in cfg["ms"]]
    rows, agree = [], {}
    for sweep, d, m in cases:
        law = Fastfood(d, dtype=dtype, device=dev)
        g = torch.Generator().manual_seed(seed)
        params = law.sample_structured(m, g)
        w = fastfood_matrix(params, d, dtype=dtype, device=dev)
        x = torch.randn(cfg["n"], d, generator=g, dtype=dtype).to(dev)
        fns = {"fastfood": lambda law=law, x=x, params=params: law.project(x, params),
               "dense": lambda x=x, w=w: x @ w.T}
        agree[f"{sweep}:{d}x{m}"] = float((fns["fastfood"]() - fns["dense"]()).abs().max()
                                          / fns["dense"]().abs().max())
        mems = {name: peak_memory(fn, dev) for name, fn in fns.items()}  # also the warm-ups
        cpu: dict[str, list[float]] = {}
        for name, times in _interleaved(fns, dev, cfg["repeats"], cpu=cpu).items():
            rows += [dict(sweep=sweep, method=name, dim=d, num_features=m, repeat=i, seconds=t,
                          cpu_seconds=cpu[name][i], peak_bytes=mems[name]) for i, t in enumerate(times)]
            _say(log, f"fastfood {sweep}-sweep {name:8s} d={d} m={m}: {np.median(times):.5f} s")
    frame = pd.DataFrame(rows).assign(benchmark="fastfood", n=cfg["n"], dtype=str(dtype).removeprefix("torch."),
                                      device=str(dev))
    frame["peak_bytes"] = frame["peak_bytes"].astype("Int64")
    out = {}
    for sweep, key in (("d", "dim"), ("m", "num_features")):
        med = frame[frame["sweep"] == sweep].groupby([key, "method"])["seconds"].median().unstack("method")
        ratio = med["dense"] / med["fastfood"]
        out[sweep] = {"dense_over_fastfood": {int(k): float(v) for k, v in ratio.items()},
                      "crossover": crossover(ratio.index, ratio.to_numpy())}
    summary = {
        "benchmark": "fastfood", "scale": scale, "machine": machine_info(dev),
        "settings": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}, "dtype": str(dtype),
                     "seed": seed},
        "ratio_vs_d (m = d)": out["d"]["dense_over_fastfood"], "crossover_d": out["d"]["crossover"],
        f"ratio_vs_m (d = {cfg['m_dim']})": out["m"]["dense_over_fastfood"], "crossover_m": out["m"]["crossover"],
        "max_relative_difference_fastfood_vs_dense": agree,
        "ratio_definition": "dense time ÷ fastfood time (> 1: Fastfood faster); crossover: log-log interpolation",
    }
    table = frame.groupby(["sweep", "dim", "num_features", "method"])["seconds"].median().unstack("method")
    table["dense/fastfood"] = table["dense"] / table["fastfood"]
    return BenchResult("fastfood", frame, summary, table.reset_index(), _plot_fastfood)


def _plot_fastfood(frame: pd.DataFrame):
    import seaborn as sns

    fig, (ax1, ax2) = _figure(2)
    for ax, sweep, x, title in ((ax1, "d", "dim", "m = d"), (ax2, "m", "num_features", "d fixed")):
        part = frame[frame["sweep"] == sweep]
        sns.lineplot(data=part, x=x, y="seconds", hue="method", marker="o", estimator="median",
                     errorbar=("pi", 100), ax=ax)
        ax.set(xscale="log", yscale="log", title=f"x·Wᵀ for n={frame['n'].iloc[0]} inputs, {title}")
    return fig


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------

BENCHMARKS: dict[str, Callable[..., BenchResult]] = {
    "attention": bench_attention,
    "engine": bench_engine,
    "fastfood": bench_fastfood,
}


def run(
    names=("attention", "engine", "fastfood"), *, scale: str = "quick", device: str = "cpu",
    out: str | os.PathLike = "experiments/bench", log: Log = None, threads: int | None = 1, **overrides,
) -> dict[str, BenchResult]:
    """Run the named benchmarks, write each one's parquet, png, json (and table .txt) under ``out``.

    ``threads``: torch threads during the run (default 1, restored afterwards; None keeps torch's setting). One
    thread keeps figures from a shared, loaded machine comparable: with several, each parallel region waits for
    its slowest, possibly descheduled, thread."""
    for name in names:
        if name not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {sorted(BENCHMARKS)}, got {name!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an int >= 1 or None, got {threads!r}")
    before = torch.get_num_threads()
    results = {}
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        for name in names:
            _say(log, f"== {name} ({scale}, {device}, {torch.get_num_threads()} torch threads)")
            res = BENCHMARKS[name](scale, device, log=log, **overrides.get(name, {}))
            res.paths = res.write(out)
            results[name] = res
    finally:
        torch.set_num_threads(before)
    return results


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
