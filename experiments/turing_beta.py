#!/usr/bin/env python
r"""Kernelized Turing constructions: the minimal β of exp(β·score) against T (and n), and the success of
random positive features against m (MATH.md §6; proofs/turing.md §4–5).

One command regenerates every table and figure::

    python experiments/turing_beta.py --scale quick --out experiments/turing

Parts:

* ``perez3`` — Pérez et al. decoder layer 3 (last-write lookup, score gap Θ(T⁻⁵)) with exp(β·score), the rest
  hardmax: the smallest β keeping T steps exact (bisection on log β), next to the proved sufficient
  β_suff = max_t log(4(t+1)²)/gap_t (kerneltheory.turing.kernelized.layer3_sufficient_beta), for random
  5-state machines; slopes of log β against log T compared with the prediction 5;
* ``perez1`` — Pérez layer 1 (input lookup, score −|t + 1 − j|) against the input length n (T = n + 8);
  prediction O(log n), proved bound: a constant β* ≈ 2.25;
* ``bits`` — the ±1 bit-position construction, layer 1 and layer 3 separately, b = ⌈log₂(T + 2)⌉;
* ``features`` — the bit construction's input lookup by linear attention with one draw of random features
  for exp(β qᵀk) = SM(√β q, √β k): fraction of exact traces over seeds against m.

Results are tidy parquet tables: one chunk per cell under ``OUT/<scale>/chunks/`` written atomically (temp file
+ os.replace); a rerun skips the chunks already on disk (their names carry a digest of the cell's
configuration; they are not committed: ``experiments/turing/.gitignore``). Then ``OUT/<scale>/beta_min.parquet``,
``success.parquet``, ``slopes.parquet``, the figures ``OUT/<scale>/beta_min.png``, ``success.png``, ``summary.md``
and ``config.json`` (the configuration and the parts run). Deterministic: machines and feature draws
come from fixed seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kerneltheory.io import write_json_atomic, write_parquet_atomic, write_text_atomic
from kerneltheory.turing import kernelized as K
from kerneltheory.turing.layers import ExpScore
from kerneltheory.turing.machine import random_machine, random_word
from kerneltheory.turing.perez import PerezTransformer

PARTS = ("perez3", "perez1", "bits", "features")

SCALES = {
    "quick": {
        "machine": dict(num_states=5, num_symbols=4, word_length=4),
        "perez3": dict(machines=[0, 1, 3, 4, 6], steps=[16, 32, 64, 128]),
        "perez1": dict(machines=[0, 1], lengths=[8, 16, 32, 64, 128], extra_steps=8),
        "bits": dict(machines=[0, 1, 6], steps=[14, 30, 62, 126], layers=[1, 3]),
        "features": dict(machine=1, bits=[3, 4], word_length={3: 4, 4: 8}, beta=2.0,
                         ms=[8, 32, 128, 512, 2048, 8192, 32768], seeds=10,
                         estimators=["positive/orthogonal", "positive/gaussian", "trig/orthogonal"],
                         max_m={"trig/orthogonal": 8192}),
        "rel_tol": 0.05,
    },
    "full": {
        "machine": dict(num_states=5, num_symbols=4, word_length=4),
        "perez3": dict(machines=list(range(10)), steps=[16, 32, 64, 128, 256, 512]),
        "perez1": dict(machines=[0, 1, 2, 3], lengths=[8, 16, 32, 64, 128, 256, 512], extra_steps=8),
        "bits": dict(machines=[0, 1, 2, 3, 6], steps=[14, 30, 62, 126, 254], layers=[1, 3]),
        "features": dict(machine=1, bits=[3, 4, 5], word_length={3: 4, 4: 8, 5: 12}, beta=2.0,
                         ms=[8, 32, 128, 512, 2048, 8192, 32768, 131072], seeds=40,
                         estimators=["positive/orthogonal", "positive/gaussian", "trig/orthogonal"]),
        "rel_tol": 0.02,
    },
}  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# chunks: one atomic parquet file per cell
# ---------------------------------------------------------------------------------------------------


def _digest(cell: dict) -> str:
    return hashlib.sha1(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:10]


def cell_settings(part: str, cfg: dict, cell: dict) -> dict:
    """Everything a cell's result depends on (its chunk name is a digest of this)."""
    settings = {"part": part, **cell, "machine_law": cfg["machine"], "rel_tol": cfg["rel_tol"]}
    if part == "perez1":
        settings["extra_steps"] = cfg["perez1"]["extra_steps"]
    if part == "features":
        fc = cfg["features"]
        settings.update(
            source=fc["machine"], word_length=fc["word_length"][cell["b"]], beta=fc["beta"], seeds=fc["seeds"]
        )
        settings.pop("rel_tol")
    return settings


def run_cells(part: str, cells: list[dict], compute, chunks: Path, log, cfg: dict) -> pd.DataFrame:
    frames = []
    for cell in cells:
        path = chunks / f"{part}-{_digest(cell_settings(part, cfg, cell))}.parquet"
        if path.exists():
            frames.append(pd.read_parquet(path))
            continue
        start = time.perf_counter()
        rows = compute(cell)
        df = pd.DataFrame(rows)
        write_parquet_atomic(df, path)
        log(f"{part} {cell} ({time.perf_counter() - start:.1f}s)")
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _machine(cfg: dict, seed: int, length: int | None = None):
    m = cfg["machine"]
    machine = random_machine(seed, num_states=m["num_states"], num_symbols=m["num_symbols"])
    word = random_word(seed, machine, m["word_length"] if length is None else length)
    return machine, word


# ---------------------------------------------------------------------------------------------------
# parts
# ---------------------------------------------------------------------------------------------------


def perez3_cell(cfg):
    def compute(cell):
        machine, word = _machine(cfg, cell["machine"])
        trace = machine.run(word, cell["T"])
        suff = K.layer3_sufficient_beta(trace)
        ref = trace

        def passes(beta):
            model = PerezTransformer(machine, exact=False, selections={3: ExpScore(beta)})
            return model.first_error(word, ref) is None

        beta = K.minimal_beta(passes, lo=1e-2, hi=max(10.0, 1.01 * suff), rel_tol=cfg["rel_tol"])
        return [dict(construction="perez", layer=3, machine=cell["machine"], T=cell["T"], n=len(word) + 1,
                     b=np.nan, beta_min=beta, beta_sufficient=suff, gap_min=K.layer3_gap(trace),
                     max_head=max(trace.heads), steps_run=trace.steps)]  # fmt: skip

    return compute


def perez1_cell(cfg):
    def compute(cell):
        machine, word = _machine(cfg, cell["machine"], length=cell["n"] - 1)
        steps = cell["n"] + cfg["perez1"]["extra_steps"]
        beta = K.perez_minimal_beta(machine, word, steps, layer=1, rel_tol=cfg["rel_tol"])
        trace = machine.run(word, steps)
        return [dict(construction="perez", layer=1, machine=cell["machine"], T=steps, n=cell["n"], b=np.nan,
                     beta_min=beta, beta_sufficient=K.PEREZ_LAYER1_BETA, gap_min=1.0,
                     max_head=max(trace.heads), steps_run=trace.steps)]  # fmt: skip

    return compute


def bits_cell(cfg):
    def compute(cell):
        machine, word = _machine(cfg, cell["machine"])
        b = max(2, math.ceil(math.log2(cell["T"] + 2)))
        beta = K.bit_minimal_beta(
            machine, word, cell["T"], b, layers=(cell["layer"],), rel_tol=cfg["rel_tol"]
        )
        trace = machine.run(word, cell["T"])
        return [dict(construction="bits", layer=cell["layer"], machine=cell["machine"], T=cell["T"],
                     n=len(word) + 1, b=b, beta_min=beta, beta_sufficient=np.nan, gap_min=2.0,
                     max_head=max(trace.heads), steps_run=trace.steps)]  # fmt: skip

    return compute


def features_cell(cfg):
    fc = cfg["features"]

    def compute(cell):
        b = cell["b"]
        machine, word = _machine(cfg, fc["machine"], length=fc["word_length"][b])
        steps = 2**b - 2
        seeds = [1000 * b + s for s in range(fc["seeds"])]
        ok = K.random_feature_success(
            machine, word, steps, b, fc["beta"], cell["m"], seeds, cell["estimator"]
        )
        return [dict(estimator=cell["estimator"], b=b, T=steps, beta=fc["beta"], m=cell["m"], seed=s, exact=o)
                for s, o in zip(seeds, ok, strict=True)]  # fmt: skip

    return compute


# ---------------------------------------------------------------------------------------------------
# fits and figures
# ---------------------------------------------------------------------------------------------------


def _fit(x, y) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return np.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def slopes(beta: pd.DataFrame) -> pd.DataFrame:
    rows = []
    usable = beta[(beta.beta_min > 0.0101) & np.isfinite(beta.beta_min)]
    for (cons, layer), df in usable.groupby(["construction", "layer"]):
        xname = "n" if (cons == "perez" and layer == 1) else "T"
        predicted = {("perez", 3): 5.0, ("perez", 1): 0.0, ("bits", 1): 0.0, ("bits", 3): 0.0}[(cons, layer)]
        pooled_x, pooled_y = [], []
        for machine, g in df.groupby("machine"):
            x, y = np.log(g[xname].to_numpy(float)), np.log(g.beta_min.to_numpy(float))
            ys = np.log(g.beta_sufficient.to_numpy(float)) if g.beta_sufficient.notna().all() else None
            rows.append(dict(construction=cons, layer=layer, machine=machine, x=xname, slope=_fit(x, y),
                             slope_sufficient=_fit(x, ys) if ys is not None else np.nan,
                             predicted=predicted, points=len(g)))  # fmt: skip
            if len(g) >= 2:
                pooled_x.append(x - x.mean())
                pooled_y.append(y - y.mean())
        if pooled_x:
            rows.append(dict(construction=cons, layer=layer, machine=-1, x=xname,
                             slope=_fit(np.concatenate(pooled_x), np.concatenate(pooled_y)),
                             slope_sufficient=np.nan, predicted=predicted, points=len(df)))  # fmt: skip
    return pd.DataFrame(rows)


def _integer_ticks(ax, values) -> None:
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(values)
    ax.set_xticklabels([str(int(v)) for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


def figures(beta: pd.DataFrame, success: pd.DataFrame, fits: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    # Pérez layer 3
    ax = axes[0]
    d3 = beta[(beta.construction == "perez") & (beta.layer == 3) & (beta.beta_min > 0.0101)].copy()
    if not d3.empty:
        d3["machine"] = d3.machine.astype(str)
        sns.lineplot(data=d3, x="T", y="beta_min", hue="machine", marker="o", ax=ax, palette="tab10")
        sns.lineplot(data=d3, x="T", y="beta_sufficient", hue="machine", ax=ax, palette="tab10", linestyle=":",
                     legend=False)  # fmt: skip
        t = np.array(sorted(d3["T"].unique()), dtype=float)
        anchor = float(np.exp(np.log(d3.beta_min).mean()))
        tm = float(np.exp(np.log(t).mean()))
        for p, style in ((5, "--"), (3, "-."), (2, (0, (1, 3)))):
            ax.plot(
                t, anchor * (t / tm) ** p, color="grey", linestyle=style, lw=1, label=f"predicted ∝ T^{p}"
            )
        pooled = fits[(fits.construction == "perez") & (fits.layer == 3) & (fits.machine == -1)].slope
        title = "Pérez layer 3 (last write)"
        if len(pooled):
            slope = float(pooled.iloc[0])
            ax.plot(
                t, anchor * (t / tm) ** slope, color="black", lw=2, label=f"fitted, pooled: ∝ T^{slope:.2f}"
            )
            title += f": pooled slope {slope:.2f}"
        ax.set(
            xscale="log",
            yscale="log",
            title=title + "\n(coloured dotted: proved sufficient β)",
            ylabel="minimal β",
        )
        _integer_ticks(ax, t)
        ax.legend(fontsize=6, ncol=2)
    # Pérez layer 1
    ax = axes[1]
    d1 = beta[(beta.construction == "perez") & (beta.layer == 1)].copy()
    if not d1.empty:
        d1["machine"] = d1.machine.astype(str)
        sns.lineplot(data=d1, x="n", y="beta_min", hue="machine", marker="o", ax=ax)
        ax.axhline(K.PEREZ_LAYER1_BETA, color="black", linestyle=":", label="proved bound β* ≈ 2.25")
        n = np.array(sorted(d1.n.unique()), dtype=float)
        ax.plot(n, d1.beta_min.min() * np.log(n) / np.log(n.min()), "k--", lw=1, label="∝ log n (prediction)")
        ax.set(
            xscale="log", title="Pérez layer 1 (input lookup) against n", ylabel="minimal β", ylim=(0, None)
        )
        _integer_ticks(ax, n)
        ax.legend(fontsize=7)
    # bits
    ax = axes[2]
    db = beta[beta.construction == "bits"].copy()
    if not db.empty:
        db["layer"] = "layer " + db.layer.astype(str)
        sns.lineplot(data=db, x="T", y="beta_min", hue="layer", style="machine", marker="o", ax=ax)
        ax.set(xscale="log", title="bit positions (every gap ≥ 2)", ylabel="minimal β", ylim=(0, None))
        _integer_ticks(ax, np.array(sorted(db["T"].unique()), dtype=float))
        ax.legend(fontsize=6, ncol=2, loc="center right")
    fig.tight_layout()
    fig.savefig(out / "beta_min.png", dpi=130)
    plt.close(fig)

    if not success.empty:
        rate = success.groupby(["estimator", "b", "T", "m"], as_index=False).exact.mean()
        rate["bits"] = "b = " + rate.b.astype(str) + " (T = " + rate["T"].astype(str) + ")"
        g = sns.relplot(data=rate, x="m", y="exact", hue="estimator", col="bits", kind="line", marker="o",
                        height=3.6, aspect=1.2)  # fmt: skip
        g.set(xscale="log", ylim=(-0.03, 1.03))
        g.set_titles("{col_name}")
        g.set_axis_labels("number of random features m", "P(trace exact)")
        g.figure.suptitle(
            f"input lookup by random features for exp(β qᵀk), β = {success.beta.iloc[0]:g}", y=1.03
        )
        g.savefig(out / "success.png", dpi=130)
        plt.close(g.figure)


def _md(df: pd.DataFrame, fmt: str = ".3g", index: bool = False) -> str:
    """A markdown table without the optional ``tabulate`` dependency."""
    if index:
        df = df.reset_index()

    def cell(v):
        if isinstance(v, float | np.floating):
            return format(v, fmt) if np.isfinite(v) else str(v)
        return str(v)

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def summary(beta: pd.DataFrame, success: pd.DataFrame, fits: pd.DataFrame, scale: str) -> str:
    lines = [f"# Kernelized Turing constructions ({scale} scale)", ""]
    lines.append(
        "Slopes of log(minimal β) against log T (log n for Pérez layer 1); machine −1 = pooled fit.\n"
    )
    lines.append(_md(fits, ".2f") if not fits.empty else "(none)")
    lines.append("\nMinimal β per cell:\n")
    cols = ["construction", "layer", "machine", "T", "n", "b", "beta_min", "beta_sufficient", "max_head"]
    lines.append(_md(beta[cols]))
    if not success.empty:
        lines.append(
            "\nFraction of exact traces with random features (input lookup of the bit construction):\n"
        )
        table = success.groupby(["estimator", "b", "m"]).exact.mean().unstack("m")
        lines.append(_md(table, ".2f", index=True))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="quick")
    parser.add_argument("--out", default="experiments/turing")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = SCALES[args.scale]
    out = Path(args.out) / args.scale
    chunks = out / "chunks"
    write_json_atomic(out / "config.json", {"scale": args.scale, "parts": args.parts, **cfg})
    start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    frames, success = [], pd.DataFrame()
    if "perez3" in args.parts:
        cells = [dict(machine=m, T=t) for m in cfg["perez3"]["machines"] for t in cfg["perez3"]["steps"]]
        frames.append(run_cells("perez3", cells, perez3_cell(cfg), chunks, log, cfg))
    if "perez1" in args.parts:
        cells = [dict(machine=m, n=n) for m in cfg["perez1"]["machines"] for n in cfg["perez1"]["lengths"]]
        frames.append(run_cells("perez1", cells, perez1_cell(cfg), chunks, log, cfg))
    if "bits" in args.parts:
        bc = cfg["bits"]
        cells = [
            dict(machine=m, T=t, layer=lay)
            for m in bc["machines"]
            for t in bc["steps"]
            for lay in bc["layers"]
        ]
        frames.append(run_cells("bits", cells, bits_cell(cfg), chunks, log, cfg))
    if "features" in args.parts:
        fc = cfg["features"]
        cap = fc.get("max_m", {})
        cells = [dict(b=b, m=m, estimator=e) for e in fc["estimators"] for b in fc["bits"] for m in fc["ms"]
                 if m <= cap.get(e, math.inf)]  # fmt: skip
        success = run_cells("features", cells, features_cell(cfg), chunks, log, cfg)
    beta = pd.concat([f for f in frames if not f.empty], ignore_index=True) if frames else pd.DataFrame()
    fits = slopes(beta) if not beta.empty else pd.DataFrame()
    for name, df in (("beta_min", beta), ("success", success), ("slopes", fits)):
        if not df.empty:
            write_parquet_atomic(df, out / f"{name}.parquet")
    figures(beta, success, fits, out)
    write_text_atomic(out / "summary.md", summary(beta, success, fits, args.scale))
    log(f"done: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
