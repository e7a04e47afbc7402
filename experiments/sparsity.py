#!/usr/bin/env python
r"""Sparsity of kernelized attention (MATH.md §7; docs/sparsity.md; proofs/sparsity.md).

One command regenerates every table and figure::

    python experiments/sparsity.py --scale quick --out experiments/sparsity

Parts (``--parts``, default all):

* ``temperature`` — every representative estimator against softmax attention whose mean normalised row entropy
  is swept by temperature (:func:`kerneltheory.sparsity.temperature_inputs`), for several m: KL(softmax row ‖
  approximate row), argmax agreement, entropy gap, relative error of the smallest weights, effective rank;
* ``planted`` — planted k-sparse targets (:func:`kerneltheory.sparsity.planted_keys`) swept by margin: mass on the
  planted keys, Frobenius error against the Eckart–Young floor of a rank-D map (the rank ceiling);
* ``performer`` — Performer's small-weight prediction: the relative MSE of SM estimates along ‖x + y‖ = ζ fixed,
  SM → 0, next to the closed forms, and the calibrated checks of kerneltheory.testing.sparsity_checks;
* ``floors`` — min κ / max κ of elu + 1, the feed-forward kernel, Hedgehog and softmax on bounded inputs, with
  the proved lower bounds; the mean row entropy as the inputs are scaled (temperature → 0);
* ``retrieval`` — the controllable-sparsity retrieval task of kerneltheory.nn.tasks (k planted tokens among n,
  label = parity of their values) learned by a one-layer KLTransformer with fixed and learned kernels.

Results are tidy parquet tables written atomically per chunk (one estimator or one training run) under
``OUT/<scale>/chunks/``; a rerun skips the chunks already on disk (their names carry a digest of their
configuration, so a changed configuration is recomputed). Then ``OUT/<scale>/<part>.parquet``, the figures
``OUT/<scale>/fig_*.png`` and ``OUT/<scale>/summary.md`` are written. Every seed derives from a cell's name
(kerneltheory.testing.seeds.seed_for), so a run is deterministic.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import kerneltheory.estimators as E
from kerneltheory import sparsity as S
from kerneltheory import theory
from kerneltheory.attention import attention_matrix
from kerneltheory.io import save_figure_atomic, write_parquet_atomic, write_text_atomic
from kerneltheory.testing import sparsity_checks as SC
from kerneltheory.testing.seeds import seed_for

PARTS = ("temperature", "planted", "performer", "floors", "retrieval")

# (label, registry name, keyword arguments); "draws" of deterministic maps with a random initialisation
# (feed-forward) are initial seeds, elu + 1 and Hedgehog (identity initialisation) have one draw.
ESTIMATORS = (
    ("trig/gaussian", "trig/gaussian", {}),
    ("positive/gaussian", "positive/gaussian", {}),
    ("positive/orthogonal", "positive/orthogonal", {}),
    ("hyperbolic/gaussian", "hyperbolic/gaussian", {}),
    ("oprf/gaussian", "oprf/gaussian", {}),
    ("saderf/gaussian", "saderf/gaussian", {}),
    ("GMM-PRF", "positive/mixture", {"components": 2}),
    ("elu+1", "elu", {}),
    ("feedforward", "feedforward", {}),
    ("hedgehog", "hedgehog", {}),
)
DETERMINISTIC = {"elu+1", "feedforward", "hedgehog"}
PERFORMER = (
    "positive/gaussian",
    "positive/orthogonal",
    "hyperbolic/gaussian",
    "trig/gaussian",
    "oprf/gaussian",
    "saderf/gaussian",
)

SCALES = {
    "quick": {
        "temperature": dict(
            n=64, n_keys=64, d=16, entropies=[0.9, 0.7, 0.5, 0.3, 0.15], ms=[16, 64, 256], draws=3
        ),
        "planted": dict(
            d=64,
            configs=[[48, 1, 16], [16, 4, 0]],
            margins=[0.5, 1.0, 2.0, 3.0, 4.0],
            ms=[8, 32, 128],
            draws=2,
        ),
        "performer": dict(
            d=8,
            m=64,
            zeta=0.5,
            taus=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5],
            radius=1.0,
            angles=[0, 45, 90, 135, 160, 180],
            draws=4096,
            check_draws=8192,
        ),
        "floors": dict(
            d=16,
            n=64,
            radii=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
            ff_seeds=3,
            betas=[0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0],
        ),
        "retrieval": dict(
            kernels=["softmax", "positive/orthogonal", "GMM-PRF", "elu", "hedgehog", "feedforward"],
            lengths=[16, 48],
            planted=2,
            classes=2,
            distractors=8,
            d_model=32,
            heads=2,
            steps=300,
            batch=64,
            lr=3e-3,
            seeds=[0],
            eval_size=1024,
        ),
    },
    "full": {
        "temperature": dict(
            n=128,
            n_keys=128,
            d=32,
            entropies=[0.95, 0.85, 0.7, 0.55, 0.4, 0.3, 0.2, 0.1],
            ms=[8, 16, 32, 64, 128, 256, 512],
            draws=16,
        ),
        "planted": dict(
            d=64,
            configs=[[48, 1, 16], [16, 4, 0], [8, 8, 0]],
            margins=[0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0],
            ms=[4, 8, 16, 32, 64, 128, 256],
            draws=8,
        ),
        "performer": dict(
            d=8,
            m=64,
            zeta=0.5,
            taus=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
            radius=1.0,
            angles=[0, 30, 60, 90, 120, 150, 165, 180],
            draws=32768,
            check_draws=16384,
        ),
        "floors": dict(
            d=16,
            n=128,
            radii=[0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
            ff_seeds=8,
            betas=list(np.logspace(-1, 4, 16)),
        ),
        "retrieval": dict(
            kernels=[
                "softmax",
                "positive/orthogonal",
                "trig/orthogonal",
                "GMM-PRF",
                "GMM-RKS",
                "elu",
                "hedgehog",
                "feedforward",
            ],
            lengths=[16, 32, 64, 128],
            planted=2,
            classes=2,
            distractors=8,
            d_model=32,
            heads=2,
            steps=1500,
            batch=64,
            lr=3e-3,
            seeds=[0, 1, 2],
            eval_size=2048,
        ),
    },
}


# ---------------------------------------------------------------------------------------------------
# Chunks on disk
# ---------------------------------------------------------------------------------------------------


def digest(obj) -> str:
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


class Chunks:
    """``root/<part>/<name>-<digest>.parquet``: compute a chunk only if it is not on disk yet."""

    def __init__(self, root: Path, part: str):
        self.dir = root / "chunks" / part
        self.computed = self.reused = 0

    def path(self, name: str, config) -> Path:
        return self.dir / f"{slug(name)}-{digest(config)}.parquet"

    def get(self, name: str, config, compute) -> pd.DataFrame:
        path = self.path(name, config)
        if path.is_file():
            self.reused += 1
            return pd.read_parquet(path)
        frame = compute()
        write_parquet_atomic(frame, path)
        self.computed += 1
        return frame


def gen(*keys) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(":".join(str(k) for k in keys)))


def build(label: str, d: int, m: int, draw: int = 0):
    name, kw = next((n, k) for lab, n, k in ESTIMATORS if lab == label)
    init = draw if label == "feedforward" else 0
    return E.get(name, d, m, init_seed=seed_for(f"init:{label}:{init}") % 2**31, **kw)


def n_draws(label: str, draws: int) -> int:
    return 1 if label in ("elu+1", "hedgehog") else draws


def approx_matrix(est, q, k, g, label):
    """Â = attention_matrix(q̃, k̃, φ) with q̃ = q d^{-1/4}, k̃ = k d^{-1/4} (the maps estimate exp(q̃ᵀk̃))."""
    fm = est.draw(g)
    s = q.shape[-1] ** -0.25
    with torch.no_grad():
        return attention_matrix(q * s, k * s, fm), fm.feature_dim


def measure_draw(row: dict, est, q, k, a, scores, g, label, more=None) -> dict:
    """``row`` updated with one draw's Â against the softmax matrix ``a``: the feature dimension, the
    :func:`row_measures` and ``more(Â, D)`` if given; or, when the map refuses the inputs (a ValueError, e.g. a
    non-finite attention row), the error message instead of the measures."""
    try:
        ahat, dim = approx_matrix(est, q, k, g, label)
        row.update(feature_dim=dim, error="", **row_measures(a, ahat, scores), **(more(ahat, dim) if more else {}))
    except ValueError as exc:
        row.update(feature_dim=est.feature_dim, error=str(exc)[:200])
    return row


# ---------------------------------------------------------------------------------------------------
# Part 1: temperature sweep
# ---------------------------------------------------------------------------------------------------


def row_measures(a: torch.Tensor, ahat: torch.Tensor, scores: torch.Tensor) -> dict:
    signed = bool((ahat < 0).any())
    p = S.clip_renormalise(ahat) if signed else ahat
    kl = S.kl_rows(a, p)
    rc = S.rank_correlation(scores, ahat, undefined="nan")
    return {
        "signed": signed,
        "neg_frac": float((ahat < 0).double().mean()),
        "kl_mean": float(kl[torch.isfinite(kl)].mean()) if bool(torch.isfinite(kl).any()) else math.inf,
        "kl_median": float(kl.median()),
        "kl_inf_frac": float((~torch.isfinite(kl)).double().mean()),
        "argmax": float(S.argmax_agreement(a, ahat).mean()),
        "entropy": float(S.row_entropy(p).mean()),
        "entropy_gap": float((S.row_entropy(p) - S.row_entropy(a)).mean()),
        "small_rel_err": float(S.small_weight_relative_error(a, ahat).median()),
        "l1": float((ahat - a).abs().sum(-1).mean()),
        "top1": float(S.top_k_mass(p, 1).mean()),
        "top1_softmax": float(S.top_k_mass(a, 1).mean()),
        "rank_corr": float(np.nanmean(rc.numpy())) if bool(torch.isfinite(rc).any()) else math.nan,
        "erank": float(S.effective_rank(ahat)),
        "erank_softmax": float(S.effective_rank(a)),
        "floor": float(S.kernel_floor(p).mean()),
        "frob": float(torch.linalg.matrix_norm(ahat - a)),
    }


def part_temperature(cfg: dict, chunks: Chunks, progress: bool) -> pd.DataFrame:
    d = cfg["d"]
    inputs = {
        h: S.temperature_inputs(cfg["n"], d, h, gen("temperature", "inputs", h), n_keys=cfg["n_keys"])
        for h in cfg["entropies"]
    }
    frames = []
    for label, _, _ in tqdm(ESTIMATORS, desc="temperature", disable=not progress):
        ms = [0] if label in DETERMINISTIC else cfg["ms"]

        def compute(label=label, ms=ms):
            rows = []
            for h, inp in inputs.items():
                a = inp.softmax()
                scores = inp.q @ inp.k.T / math.sqrt(d)
                for m in ms:
                    for r in range(n_draws(label, cfg["draws"])):
                        est = build(label, d, max(m, 1), r)
                        row = dict(
                            estimator=label,
                            m=m,
                            target_entropy=h,
                            beta=inp.beta,
                            softmax_entropy=inp.entropy,
                            draw=r,
                        )
                        g = gen("temperature", label, h, m, r)
                        rows.append(measure_draw(row, est, inp.q, inp.k, a, scores, g, label))
            return pd.DataFrame(rows)

        frames.append(chunks.get(label, {"cfg": cfg, "label": label}, compute))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------------
# Part 2: planted k-sparse targets and the rank ceiling
# ---------------------------------------------------------------------------------------------------


def part_planted(cfg: dict, chunks: Chunks, progress: bool) -> pd.DataFrame:
    d = cfg["d"]
    frames = []
    for label, _, _ in tqdm(ESTIMATORS, desc="planted", disable=not progress):
        ms = [0] if label in DETERMINISTIC else cfg["ms"]

        def compute(label=label, ms=ms):
            rows = []
            for n, k, extra in cfg["configs"]:
                for margin in cfg["margins"]:
                    inp = S.planted_keys(
                        n, d, k, margin, gen("planted", "inputs", n, k, margin), distractors=extra
                    )
                    a = inp.softmax()
                    scores = inp.q @ inp.k.T / math.sqrt(d)
                    nk = inp.k.shape[0]
                    for m in ms:
                        for r in range(n_draws(label, cfg["draws"])):
                            est = build(label, d, max(m, 1), r)
                            row = dict(
                                estimator=label,
                                m=m,
                                n=n,
                                k=k,
                                n_keys=nk,
                                margin=margin,
                                planted_mass_softmax=inp.mass,
                                softmax_entropy=inp.entropy,
                                draw=r,
                            )
                            def planted(ahat, dim, inp=inp, n=n, nk=nk, k=k, margin=margin):
                                return dict(
                                    planted_mass=float((ahat * inp.support).sum(-1).mean()),
                                    rank_floor=S.planted_rank_floor(n, nk, k, margin, dim),
                                )

                            g = gen("planted", label, n, k, margin, m, r)
                            rows.append(measure_draw(row, est, inp.q, inp.k, a, scores, g, label, planted))
            return pd.DataFrame(rows)

        frames.append(chunks.get(label, {"cfg": cfg, "label": label}, compute))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------------
# Part 3: Performer's small-weight prediction
# ---------------------------------------------------------------------------------------------------


def _relmse(est, x, y, draws, g):
    sm = SC.softmax_pairs(x, y)
    e = (est.sample_estimates(x, y, g, draws) / sm - 1) ** 2
    return e.mean(0), e.std(0) / math.sqrt(draws), sm


def _theory(label, x, y, m):
    sm2 = SC.softmax_pairs(x, y) ** 2
    if label == "positive/gaussian":
        return SC.positive_relative_variance(x, y, m)
    if label == "trig/gaussian":
        return SC.trig_relative_variance(x, y, m)
    if label == "hyperbolic/gaussian":
        return theory.softmax_hyperbolic_variance(x, y, m) / sm2
    return torch.full_like(sm2, math.nan)


def part_performer(cfg: dict, chunks: Chunks, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    d, m = cfg["d"], cfg["m"]
    x1, y1 = SC.small_weight_pairs(d, cfg["zeta"], cfg["taus"], gen("performer", "path"))
    g = gen("performer", "angles")
    basis, _ = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
    th = torch.tensor(cfg["angles"], dtype=torch.float64) * math.pi / 180
    x2 = cfg["radius"] * basis[:, 0].expand(len(th), d)
    y2 = cfg["radius"] * (torch.cos(th)[:, None] * basis[:, 0] + torch.sin(th)[:, None] * basis[:, 1])
    frames, checks = [], []
    for label in tqdm(PERFORMER, desc="performer", disable=not progress):

        def compute(label=label):
            est = build(label, d, m)
            rows = []
            for path, x, y, par in (
                ("z fixed, tau grows", x1, y1, cfg["taus"]),
                ("norms fixed, angle grows", x2, y2, cfg["angles"]),
            ):
                mean, se, sm = _relmse(est, x, y, cfg["draws"], gen("performer", label, path))
                th_ = _theory(label, x, y, m)
                for i in range(len(par)):
                    rows.append(
                        dict(
                            estimator=label,
                            path=path,
                            parameter=float(par[i]),
                            sm=float(sm[i]),
                            z2=float(((x[i] + y[i]) ** 2).sum()),
                            tau2=float(((x[i] - y[i]) ** 2).sum()),
                            relmse=float(mean[i]),
                            se=float(se[i]),
                            theory=float(th_[i]),
                            m=m,
                        )
                    )
            return pd.DataFrame(rows)

        frames.append(chunks.get(label, {"cfg": cfg, "label": label}, compute))

        def compute_checks(label=label):
            rows = []
            for claim in SC.CLAIMS:
                r = SC.small_weight_check(
                    E.resolve(label),
                    claim=claim,
                    dim=4,
                    num_features=64,
                    draws=cfg["check_draws"],
                    seed=seed_for(f"check:{label}:{claim}"),
                )
                rows.append(dict(estimator=label, **r.as_dict()))
            return pd.DataFrame(rows)

        checks.append(chunks.get(f"check-{label}", {"cfg": cfg, "label": label, "v": 1}, compute_checks))
    return pd.concat(frames, ignore_index=True), pd.concat(checks, ignore_index=True)


# ---------------------------------------------------------------------------------------------------
# Part 4: floors and temperature saturation
# ---------------------------------------------------------------------------------------------------


def _ball(n, d, radius, g):
    u = torch.randn(n, d, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True)
    norms = radius * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / d)
    norms[0] = radius  # the boundary is always present
    return u * norms


def part_floors(cfg: dict, chunks: Chunks, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    d, n = cfg["d"], cfg["n"]
    maps = [("elu+1", 0), ("hedgehog", 0)] + [("feedforward", s) for s in range(cfg["ff_seeds"])]

    def compute_floors():
        rows = []
        for radius in cfg["radii"]:
            x = _ball(n, d, radius, gen("floors", "x", radius))
            y = _ball(n, d, radius, gen("floors", "y", radius))
            sm_floor = S.kernel_floor(torch.exp(x @ y.T))
            rows.append(
                dict(
                    map="softmax exp(xᵀy)",
                    seed=0,
                    radius=radius,
                    floor_min=float(sm_floor.min()),
                    floor_median=float(sm_floor.median()),
                    bound=S.softmax_floor_bound(radius),
                )
            )
            for label, s in maps:
                est = build(label, d, 1, s)
                f = S.kernel_floor(est.draw(gen("floors", label)).estimate(x, y))
                comp = est.component
                if label == "elu+1":
                    bound = S.elu_floor_bound(radius)
                elif label == "hedgehog":
                    bound = S.hedgehog_floor_bound(comp, radius)
                else:
                    bound = S.feedforward_floor_bound(comp, radius)
                rows.append(
                    dict(
                        map=label,
                        seed=s,
                        radius=radius,
                        floor_min=float(f.min()),
                        floor_median=float(f.median()),
                        bound=bound,
                    )
                )
        frame = pd.DataFrame(rows)
        frame["top1_ceiling"] = [S.top_k_ceiling(min(1.0, f), n, 1) for f in frame["floor_min"]]
        return frame

    def compute_saturation():
        g = gen("floors", "saturation")
        q0 = torch.randn(n, d, generator=g, dtype=torch.float64)
        k0 = torch.randn(n, d, generator=g, dtype=torch.float64)
        relu = torch.relu(q0) @ torch.relu(k0).T
        ok = relu.sum(-1) > 0
        rows = [
            dict(
                map="relu(q)ᵀrelu(k) (limit of elu+1)",
                beta=b,
                entropy=float(S.row_entropy(relu[ok] / relu[ok].sum(-1, keepdim=True)).mean()),
            )
            for b in cfg["betas"]
        ]
        for b in cfg["betas"]:
            q, k = q0 * math.sqrt(b), k0 * math.sqrt(b)
            rows.append(
                dict(map="softmax", beta=b, entropy=float(S.row_entropy(S.softmax_matrix(q, k)).mean()))
            )
            for label, s in maps[:3]:
                fm = build(label, d, 1, s).draw(gen("floors", label))
                a = attention_matrix(q * d**-0.25, k * d**-0.25, fm)
                rows.append(dict(map=label, beta=b, entropy=float(S.row_entropy(a).mean())))
        return pd.DataFrame(rows)

    return (
        chunks.get("floors", {"cfg": cfg, "v": 1}, compute_floors),
        chunks.get("saturation", {"cfg": cfg, "v": 1}, compute_saturation),
    )


# ---------------------------------------------------------------------------------------------------
# Part 5: learned kernels on the retrieval task (kerneltheory.nn)
# ---------------------------------------------------------------------------------------------------


def train_retrieval(job: dict) -> dict:
    """Train a one-layer KLTransformer on retrieval_task (k planted tokens among n, parity label)."""
    torch.set_num_threads(1)
    from kerneltheory.nn import KLTransformer
    from kerneltheory.nn.tasks import majority_rate, retrieval_task, retrieval_vocab_size

    kernel, n, seed = job["kernel"], job["length"], job["seed"]
    c, nd, k = job["classes"], job["distractors"], job["planted"]
    kw = {"components": 2} if kernel in ("GMM-PRF", "GMM-RKS") else {}
    model = KLTransformer(
        retrieval_vocab_size(c, nd),
        c,
        d_model=job["d_model"],
        num_heads=job["heads"],
        num_layers=1,
        kernel=kernel,
        max_len=n,
        seed=seed,
        **kw,
    )
    opt = torch.optim.Adam(model.parameters(), lr=job["lr"])
    base = seed_for(f"retrieval:{n}:{seed}") % 2**30
    t0 = time.perf_counter()
    loss = math.nan
    for step in range(job["steps"]):
        b = retrieval_task(job["batch"], n, k, base + step, num_classes=c, num_distractors=nd)
        out = torch.nn.functional.cross_entropy(model(b.tokens), b.labels)
        opt.zero_grad()
        out.backward()
        opt.step()
        loss = out.item()
    model.eval()
    test = retrieval_task(job["eval_size"], n, k, 2**30 + base, num_classes=c, num_distractors=nd)
    with torch.no_grad():
        acc = float((model(test.tokens).argmax(-1) == test.labels).double().mean())
    learnable = any(layer.learnable for layer in model.attention_layers) if kernel != "softmax" else False
    return dict(
        kernel=kernel,
        length=n,
        planted=k,
        sparsity=k / n,
        seed=seed,
        steps=job["steps"],
        accuracy=acc,
        chance=majority_rate(test.labels),
        final_loss=loss,
        learned_kernel=learnable,
        train_seconds=time.perf_counter() - t0,
    )


def part_retrieval(cfg: dict, chunks: Chunks, progress: bool, workers: int) -> pd.DataFrame:
    jobs = []
    for kernel in cfg["kernels"]:
        for n in cfg["lengths"]:
            for seed in cfg["seeds"]:
                job = {
                    key: cfg[key]
                    for key in (
                        "planted",
                        "classes",
                        "distractors",
                        "d_model",
                        "heads",
                        "steps",
                        "batch",
                        "lr",
                        "eval_size",
                    )
                }
                job.update(kernel=kernel, length=n, seed=seed)
                jobs.append(job)
    todo = [j for j in jobs if not chunks.path(f"{j['kernel']}-{j['length']}-{j['seed']}", j).is_file()]
    chunks.reused += len(jobs) - len(todo)
    bar = tqdm(total=len(jobs), desc="retrieval", disable=not progress, initial=len(jobs) - len(todo))
    if todo and workers > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            for job, row in zip(todo, pool.map(train_retrieval, todo), strict=True):
                chunks.get(
                    f"{job['kernel']}-{job['length']}-{job['seed']}", job, lambda row=row: pd.DataFrame([row])
                )
                bar.update()
    else:
        for job in todo:
            chunks.get(
                f"{job['kernel']}-{job['length']}-{job['seed']}",
                job,
                lambda job=job: pd.DataFrame([train_retrieval(job)]),
            )
            bar.update()
    bar.close()
    return pd.concat(
        [pd.read_parquet(chunks.path(f"{j['kernel']}-{j['length']}-{j['seed']}", j)) for j in jobs],
        ignore_index=True,
    )


# ---------------------------------------------------------------------------------------------------
# Figures and the summary
# ---------------------------------------------------------------------------------------------------


def figures(out: Path, results: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    paths = []

    def save(fig, name):
        try:
            paths.append(save_figure_atomic(fig, out / name, dpi=120, bbox_inches="tight"))
        finally:
            plt.close(fig)

    metrics = [
        ("kl_median", "median KL(softmax ‖ Â) per row", True),
        ("argmax", "argmax agreement", False),
        ("entropy_gap", "entropy gap H(Â) − H(A)", False),
        ("small_rel_err", "median rel. error of the smallest 25% weights", True),
    ]
    if "temperature" in results:
        t = results["temperature"].replace([np.inf, -np.inf], np.nan)
        mmax = max(t["m"])
        sel = t[(t["m"] == mmax) | (t["m"] == 0)]
        fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
        for ax, (col, title, logy) in zip(axes.flat, metrics, strict=True):
            sns.lineplot(
                sel,
                x="target_entropy",
                y=col,
                hue="estimator",
                marker="o",
                ax=ax,
                errorbar=None,
                legend=ax is axes.flat[0],
            )
            ax.set(title=title, xlabel="softmax mean normalised row entropy (← sparser)", ylabel="")
            ax.invert_xaxis()
            if logy:
                ax.set_yscale("log")
        axes.flat[0].legend(fontsize=7, ncol=2)
        fig.suptitle(
            f"Approximation quality against sparsity (random features at m = {mmax}; deterministic maps)"
        )
        save(fig, "fig_temperature.png")

        mid = sorted(set(t["target_entropy"]))[len(set(t["target_entropy"])) // 2]
        sel = t[(t["m"] > 0) & (t["target_entropy"] == mid)]
        fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
        for ax, (col, title, logy) in zip(axes.flat, metrics, strict=True):
            sns.lineplot(
                sel,
                x="m",
                y=col,
                hue="estimator",
                marker="o",
                ax=ax,
                errorbar=None,
                legend=ax is axes.flat[0],
            )
            ax.set(title=title, xscale="log", ylabel="")
            ax.set_xticks(sorted(sel["m"].unique()), [str(int(v)) for v in sorted(sel["m"].unique())])
            ax.minorticks_off()
            if logy:
                ax.set_yscale("log")
        axes.flat[0].legend(fontsize=7, ncol=2)
        fig.suptitle(f"Approximation quality against m (softmax entropy {mid})")
        save(fig, "fig_vs_m.png")

    if "planted" in results:
        p = results["planted"][results["planted"]["error"] == ""]
        p = p[p["k"] == p["k"].min()]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        mref = sorted(set(p["m"]) - {0})[len(set(p["m"]) - {0}) // 2]
        sel = p[(p["m"] == mref) | (p["m"] == 0)]
        sns.lineplot(
            sel, x="margin", y="planted_mass", hue="estimator", marker="o", ax=axes[0], errorbar=None
        )
        exact = sel.drop_duplicates("margin").sort_values("margin")
        axes[0].plot(exact["margin"], exact["planted_mass_softmax"], "k--", label="softmax (exact)")
        axes[0].set(title=f"mass on the planted key (k = {p['k'].min()}, m = {mref})", ylabel="")
        axes[0].legend(fontsize=6, ncol=2)
        big = p[p["margin"] == p["margin"].max()]
        sns.scatterplot(big, x="feature_dim", y="frob", hue="estimator", ax=axes[1], legend=False)
        dd = np.unique(np.concatenate([[1], np.sort(big["feature_dim"].unique())]))
        n0, nk0 = int(big["n"].iloc[0]), int(big["n_keys"].iloc[0])
        floor = [
            S.planted_rank_floor(n0, nk0, int(p["k"].min()), float(p["margin"].max()), int(x)) for x in dd
        ]
        axes[1].plot(dd, floor, "k-", drawstyle="steps-post", label="Eckart–Young floor")
        axes[1].set(
            xscale="log",
            yscale="log",
            title=f"‖A − Â‖_F at margin {p['margin'].max()} (n = {n0} rows)",
            xlabel="feature dimension D",
        )
        axes[1].legend()
        sns.scatterplot(big, x="feature_dim", y="erank", hue="estimator", ax=axes[2], legend=False)
        axes[2].plot(dd, dd, "k:", label="erank = D")
        axes[2].axhline(float(big["erank_softmax"].iloc[0]), color="k", ls="--", label="softmax target")
        axes[2].set(xscale="log", yscale="log", title="effective rank of Â", xlabel="feature dimension D")
        axes[2].legend()
        save(fig, "fig_planted.png")

    if "performer" in results:
        pf = results["performer"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, path in zip(axes, ["z fixed, tau grows", "norms fixed, angle grows"], strict=True):
            sel = pf[pf["path"] == path]
            for i, (label, grp) in enumerate(sel.groupby("estimator", sort=False)):
                col = sns.color_palette()[i]
                ax.errorbar(
                    grp["sm"], grp["relmse"], yerr=2 * grp["se"], fmt="o", color=col, ms=4, label=label
                )
                if grp["theory"].notna().all():
                    ax.plot(grp["sm"], grp["theory"], "-", color=col, lw=1)
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="SM(x, y)",
                ylabel="relative MSE E(Ŝ/SM − 1)²",
                title=f"{path} (m = {int(sel['m'].iloc[0])}; lines: theory)",
                ylim=(1e-7, None),
            )
            ax.invert_xaxis()
        axes[0].legend(fontsize=7)
        save(fig, "fig_performer.png")

    if "floors" in results:
        fl, sat = results["floors"], results["saturation"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for i, (label, grp) in enumerate(fl.groupby("map", sort=False)):
            col = sns.color_palette()[i]
            g0 = (
                grp.groupby("radius")
                .agg(floor_min=("floor_min", "min"), bound=("bound", "min"))
                .reset_index()
            )
            axes[0].plot(g0["radius"], g0["floor_min"], "o-", color=col, label=f"{label} (measured min)")
            axes[0].plot(g0["radius"], g0["bound"], "--", color=col, label=f"{label} (proved bound)")
        axes[0].set(
            xscale="log",
            yscale="log",
            xlabel="input radius R",
            ylabel="min κ / max κ",
            title="kernel floors on ‖x‖ ≤ R",
            ylim=(1e-40, 2),
        )
        axes[0].set_xticks(sorted(fl["radius"].unique()), [f"{r:g}" for r in sorted(fl["radius"].unique())])
        axes[0].minorticks_off()
        axes[0].legend(fontsize=6)
        sns.lineplot(sat, x="beta", y="entropy", hue="map", marker="o", ax=axes[1], errorbar=None)
        axes[1].set(
            xscale="log",
            xlabel="input scale β (q, k → √β q, √β k)",
            ylabel="mean normalised row entropy",
            title="sharpening by temperature",
        )
        save(fig, "fig_floors.png")

    if "retrieval" in results:
        rt = results["retrieval"]
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        sns.lineplot(
            rt,
            x="length",
            y="accuracy",
            hue="kernel",
            style="learned_kernel",
            marker="o",
            ax=ax,
            errorbar=("pi", 100) if rt["seed"].nunique() > 1 else None,
        )
        ax.axhline(float(rt["chance"].mean()), color="k", ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_xticks(sorted(rt["length"].unique()), [str(int(v)) for v in sorted(rt["length"].unique())])
        ax.minorticks_off()
        ax.set(
            xlabel="sequence length n (sparsity k/n)",
            ylabel="test accuracy",
            title=f"retrieval (parity of k = {int(rt['planted'].iloc[0])} planted tokens)",
        )
        ax.legend(fontsize=7)
        save(fig, "fig_retrieval.png")
    return paths


def md_table(frame: pd.DataFrame, floatfmt: str = ".3g") -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(out: Path, scale: str, results: dict, seconds: float) -> Path:
    parts = [
        f"# Sparsity experiment — scale `{scale}`\n",
        f"Regenerated by `python experiments/sparsity.py --scale {scale}` (this run: {seconds:.0f} s wall, reusing the "
        "chunks already on disk). "
        "Tables are medians over draws (means for agreement).\n",
    ]
    if "temperature" in results:
        t = results["temperature"]
        ok = t[t["error"] == ""]
        sel = ok[(ok["m"] == ok["m"].max()) | (ok["m"] == 0)]
        tab = (
            sel.groupby(["estimator", "target_entropy"])
            .agg(
                kl=("kl_median", "median"),
                argmax=("argmax", "mean"),
                gap=("entropy_gap", "median"),
                small_rel=("small_rel_err", "median"),
            )
            .reset_index()
        )
        wide = tab.pivot(index="estimator", columns="target_entropy", values="kl")
        wide.columns = [f"KL @ H={c}" for c in wide.columns]
        parts.append(
            f"## Temperature sweep (m = {ok['m'].max()} for random features)\n\nMedian KL per row:\n\n"
            + md_table(wide.reset_index())
            + "\n"
        )
        wide = tab.pivot(index="estimator", columns="target_entropy", values="argmax")
        wide.columns = [f"argmax @ H={c}" for c in wide.columns]
        parts.append("Argmax agreement:\n\n" + md_table(wide.reset_index()) + "\n")
        wide = tab.pivot(index="estimator", columns="target_entropy", values="small_rel")
        wide.columns = [f"small-weight rel. err @ H={c}" for c in wide.columns]
        parts.append(
            "Median relative error of the smallest 25% weights:\n\n" + md_table(wide.reset_index()) + "\n"
        )
        wide = tab.pivot(index="estimator", columns="target_entropy", values="gap")
        wide.columns = [f"H gap @ H={c}" for c in wide.columns]
        parts.append("Entropy gap H(Â) − H(A):\n\n" + md_table(wide.reset_index()) + "\n")
        fails = t[t["error"] != ""].groupby("estimator").size()
        if len(fails):
            parts.append(
                "Draws where attention_matrix raised (denominator 0 or not finite): "
                + ", ".join(f"{k}: {v}" for k, v in fails.items())
                + "\n"
            )
    if "planted" in results:
        p = results["planted"]
        p = p[p["error"] == ""]
        viol = p[p["frob"] < p["rank_floor"] * (1 - 1e-9)]
        parts.append(
            "## Planted targets and the rank ceiling\n\n"
            f"Draws with ‖A − Â‖_F below the Eckart–Young floor (must be 0): {len(viol)} of {len(p)}.\n"
        )
        big = p[p["margin"] == p["margin"].max()]
        tab = (
            big.groupby(["k", "estimator", "feature_dim"])
            .agg(
                frob=("frob", "median"),
                floor=("rank_floor", "first"),
                mass=("planted_mass", "median"),
                exact_mass=("planted_mass_softmax", "first"),
                erank=("erank", "median"),
            )
            .reset_index()
        )
        parts.append(f"At margin {p['margin'].max()}:\n\n" + md_table(tab) + "\n")
    if "performer" in results:
        pf = results["performer"]
        sel = pf[pf["path"] == "z fixed, tau grows"]
        wide = sel.pivot(index="estimator", columns="sm", values="relmse")
        wide = wide[sorted(wide.columns, reverse=True)]
        wide.columns = [f"SM={c:.3g}" for c in wide.columns]
        parts.append(
            "## Performer's small-weight prediction (‖x + y‖ = ζ fixed)\n\nRelative MSE:\n\n"
            + md_table(wide.reset_index())
            + "\n"
        )
        ck = results["performer_checks"][
            ["estimator", "claim", "passed", "method", "p_value", "effect_size", "sample_size"]
        ]
        parts.append(
            "Calibrated checks (α = 1e-6, kerneltheory.testing.sparsity_checks.small_weight_check):\n\n"
            + md_table(ck)
            + "\n"
        )
    if "floors" in results:
        fl = (
            results["floors"]
            .groupby(["map", "radius"])
            .agg(floor_min=("floor_min", "min"), bound=("bound", "min"), top1_ceiling=("top1_ceiling", "max"))
            .reset_index()
        )
        wide = fl.pivot(index="map", columns="radius", values="floor_min")
        wide.columns = [f"floor @ R={c}" for c in wide.columns]
        parts.append("## Kernel floors\n\nMeasured min κ / max κ:\n\n" + md_table(wide.reset_index()) + "\n")
        wide = fl.pivot(index="map", columns="radius", values="bound")
        wide.columns = [f"bound @ R={c}" for c in wide.columns]
        parts.append("Proved lower bounds:\n\n" + md_table(wide.reset_index()) + "\n")
        sat = results["saturation"].pivot(index="map", columns="beta", values="entropy")
        sat.columns = [f"H @ β={c:.3g}" for c in sat.columns]
        parts.append(
            "Mean normalised row entropy as the inputs are scaled by √β:\n\n"
            + md_table(sat.reset_index())
            + "\n"
        )
    if "retrieval" in results:
        rt = (
            results["retrieval"]
            .groupby(["kernel", "learned_kernel", "length"])
            .agg(accuracy=("accuracy", "mean"), chance=("chance", "mean"), seeds=("seed", "nunique"))
            .reset_index()
        )
        wide = rt.pivot(index=["kernel", "learned_kernel"], columns="length", values="accuracy")
        wide.columns = [f"acc @ n={c}" for c in wide.columns]
        parts.append(
            "## Retrieval (kerneltheory.nn.tasks.retrieval_task, parity of the planted tokens)\n\n"
            + md_table(wide.reset_index())
            + "\n"
        )
    path = write_text_atomic(out / "summary.md", "\n".join(parts))
    os.chmod(path, 0o644)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="quick")
    ap.add_argument("--out", default="experiments/sparsity")
    ap.add_argument("--parts", nargs="*", choices=PARTS, default=list(PARTS))
    ap.add_argument("--threads", type=int, default=1, help="torch threads in this process (default 1)")
    ap.add_argument("--workers", type=int, default=2, help="processes for the retrieval training runs")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = SCALES[args.scale]
    out = Path(args.out) / args.scale
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.quiet
    t0 = time.perf_counter()
    results = {}
    for part in args.parts:
        chunks = Chunks(out, part)
        if part != "retrieval":
            torch.set_grad_enabled(False)  # analysis only; training (retrieval) needs gradients
        else:
            torch.set_grad_enabled(True)
        if part == "temperature":
            results[part] = part_temperature(cfg[part], chunks, progress)
        elif part == "planted":
            results[part] = part_planted(cfg[part], chunks, progress)
        elif part == "performer":
            results["performer"], results["performer_checks"] = part_performer(cfg[part], chunks, progress)
        elif part == "floors":
            results["floors"], results["saturation"] = part_floors(cfg[part], chunks, progress)
        elif part == "retrieval":
            results[part] = part_retrieval(cfg[part], chunks, progress, args.workers)
        print(f"{part}: {chunks.computed} chunks computed, {chunks.reused} reused", file=sys.stderr)
    for name, frame in results.items():
        write_parquet_atomic(frame, out / f"{name}.parquet")
    paths = figures(out, results)
    path = summary(out, args.scale, results, time.perf_counter() - t0)
    print(
        f"wrote {len(results)} tables, {len(paths)} figures and {path} in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
