r"""Kernelized Turing constructions: the minimal β of exp(β·score) against T (and n), and the success of
random positive features against m (MATH.md §6; proofs/turing.md §4–5).

One command runs every part and writes every table and figure::

    kerneltheory turing --scale quick                # into ./kerneltheory-results/turing/quick
    kerneltheory turing --scale quick --regenerate   # the committed experiments/turing/quick

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

Results are tidy parquet tables: one chunk per cell under ``OUT/<scale>/chunks/`` written atomically; a rerun
reuses the chunks already on disk after checking them (their names carry a digest of the cell's configuration;
they are not committed: ``experiments/turing/.gitignore``; :mod:`kerneltheory.experiments.study`). Then
``OUT/<scale>/beta_min.parquet``, ``success.parquet``, ``slopes.parquet``, the figures ``beta_min.png`` and
``success.png`` (redrawn only when their data changed; :mod:`kerneltheory.experiments.turing_figures`),
``summary.md`` and ``config.json`` (the configuration and the parts run). Deterministic: machines and feature
draws come from fixed seeds.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..io import write_json_atomic, write_parquet_atomic, write_text_atomic
from ..turing import kernelized as K
from ..turing.layers import ExpScore
from ..turing.machine import random_machine, random_word
from ..turing.perez import PerezTransformer
from .study import Chunks, OutputLock
from .turing_figures import figures, slopes, summary

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
    # seconds: every code path at toy sizes (the tests and the installed-wheel check)
    "smoke": {
        "machine": dict(num_states=5, num_symbols=4, word_length=4),
        "perez3": dict(machines=[0], steps=[16, 32]),
        "perez1": dict(machines=[0], lengths=[8, 16], extra_steps=8),
        "bits": dict(machines=[0], steps=[14], layers=[1, 3]),
        "features": dict(machine=1, bits=[3], word_length={3: 4}, beta=2.0, ms=[8, 32], seeds=2,
                         estimators=["positive/orthogonal"]),
        "rel_tol": 0.2,
    },
}  # fmt: skip


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



def run_cells(part: str, cells: list[dict], compute, root: Path, log, cfg: dict, *,
              cached_only: bool = False) -> pd.DataFrame | None:
    """Every cell's rows, from its checked chunk under ``root/chunks/<part>`` or computed and stored; with
    ``cached_only``, from the chunks alone, or None when one is missing (a part this run does not compute)."""
    chunks = Chunks(root, part)
    frames = []
    for cell in cells:
        settings = cell_settings(part, cfg, cell)
        if cached_only:
            frame = chunks.load(part, settings)
            if frame is None:
                return None
            frames.append(frame)
            continue

        def compute_cell(cell=cell):
            start = time.perf_counter()
            frame = pd.DataFrame(compute(cell))
            log(f"{part} {cell} ({time.perf_counter() - start:.1f}s)")
            return frame

        frames.append(chunks.get(part, settings, compute_cell))
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


def run(
    scale: str = "quick", out: str | Path = "kerneltheory-results/turing", *, parts=PARTS, progress: bool = True
) -> dict:
    """Run (or resume) ``parts`` at ``scale`` into ``out/<scale>``; returns ``{"tables", "figures",
    "summary"}`` (the tables written, the figures redrawn, the summary's path). The tables, figures and summary
    hold every part whose cells are all in ``out/<scale>/chunks``, the others' from their checked chunks: a run of
    some parts no longer drops the rest from them (a table or figure no part fills is left as it is)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"parts must be among {list(PARTS)}, got {unknown}")
    cfg = SCALES[scale]
    root = Path(out) / scale
    start = time.perf_counter()

    def log(msg):
        if progress:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    with OutputLock(root):
        torch.set_num_threads(1)
        write_json_atomic(root / "config.json", {"scale": scale, "parts": list(parts), **cfg})
        frames, success = [], pd.DataFrame()
        bc, fc = cfg["bits"], cfg["features"]
        cap = fc.get("max_m", {})
        plans = {
            "perez3": ([dict(machine=m, T=t) for m in cfg["perez3"]["machines"] for t in cfg["perez3"]["steps"]],
                       perez3_cell(cfg)),
            "perez1": ([dict(machine=m, n=n) for m in cfg["perez1"]["machines"] for n in cfg["perez1"]["lengths"]],
                       perez1_cell(cfg)),
            "bits": ([dict(machine=m, T=t, layer=lay) for m in bc["machines"] for t in bc["steps"]
                      for lay in bc["layers"]], bits_cell(cfg)),
            "features": ([dict(b=b, m=m, estimator=e) for e in fc["estimators"] for b in fc["bits"] for m in fc["ms"]
                          if m <= cap.get(e, math.inf)], features_cell(cfg)),
        }  # fmt: skip
        for part, (cells, compute) in plans.items():
            frame = run_cells(part, cells, compute, root, log, cfg, cached_only=part not in parts)
            if frame is None:
                continue
            if part not in parts:
                log(f"{part}: from its cached chunks (not run now)")
            if part == "features":
                success = frame
            else:
                frames.append(frame)
        beta = pd.concat([f for f in frames if not f.empty], ignore_index=True) if frames else pd.DataFrame()
        fits = slopes(beta) if not beta.empty else pd.DataFrame()
        tables = [write_parquet_atomic(df, root / f"{name}.parquet")
                  for name, df in (("beta_min", beta), ("success", success), ("slopes", fits)) if not df.empty]
        drawn = figures(beta, success, fits, root)
        path = write_text_atomic(root / "summary.md", summary(beta, success, fits, scale))
    log(f"done: {root}")
    return {"tables": tables, "figures": drawn, "summary": path}
