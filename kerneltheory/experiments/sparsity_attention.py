r"""The sparsity study's attention measurements (docs/sparsity.md; proofs/sparsity.md): every estimator's
approximate attention matrix against softmax attention whose sparsity is swept by temperature
(:func:`part_temperature`) or planted (:func:`part_planted`), and the per-draw measures (:func:`row_measures`).
The estimators, seeds and helpers here are shared by :mod:`kerneltheory.experiments.sparsity_kernels`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import estimators as E
from .. import sparsity as S
from ..attention import attention_matrix
from ..testing.seeds import seed_for
from .study import Chunks

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


def measure_inputs(label: str, d: int, ms, draws: int, inp, keys: tuple, fields: dict, more=None) -> list[dict]:
    """One row per (m, draw) of estimator ``label`` on the attention inputs ``inp`` (q, k, softmax): the
    ``fields`` describing the inputs and :func:`measure_draw`'s measures; draw r at m is seeded by
    ``gen(*keys, m, r)``."""
    a = inp.softmax()
    scores = inp.q @ inp.k.T / math.sqrt(d)
    rows = []
    for m in ms:
        for r in range(n_draws(label, draws)):
            est = build(label, d, max(m, 1), r)
            row = dict(estimator=label, m=m, **fields, draw=r)
            rows.append(measure_draw(row, est, inp.q, inp.k, a, scores, gen(*keys, m, r), label, more))
    return rows


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
                fields = dict(target_entropy=h, beta=inp.beta, softmax_entropy=inp.entropy)
                rows += measure_inputs(label, d, ms, cfg["draws"], inp, ("temperature", label, h), fields)
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
                    nk = inp.k.shape[0]
                    fields = dict(n=n, k=k, n_keys=nk, margin=margin, planted_mass_softmax=inp.mass,
                                  softmax_entropy=inp.entropy)

                    def planted(ahat, dim, inp=inp, n=n, nk=nk, k=k, margin=margin):
                        return dict(
                            planted_mass=float((ahat * inp.support).sum(-1).mean()),
                            rank_floor=S.planted_rank_floor(n, nk, k, margin, dim),
                        )

                    keys = ("planted", label, n, k, margin)
                    rows += measure_inputs(label, d, ms, cfg["draws"], inp, keys, fields, planted)
            return pd.DataFrame(rows)

        frames.append(chunks.get(label, {"cfg": cfg, "label": label}, compute))
    return pd.concat(frames, ignore_index=True)
