r"""Exact tests that two rows of a frequency draw are independent (proofs/sampler_independence.md).

A law with iid rows (the ``"gaussian"`` preset, :class:`~kerneltheory.spectral.Gaussian`) or with independent
blocks (ORF, Fastfood, SimRF: one block's rows are dependent, rows of different blocks are not) claims that the
standardised rows z_i and z_j (i ≠ j, in different blocks for a block law) are independent, each N(0, I_d).
The per-row checks of :mod:`~kerneltheory.testing.samplers` pool one row index across draws and cannot see a
dependence between rows: one row repeated m times, or rows sharing a common component, pass them all.

The test (the regression χ² test with known variance). Over R independent draws let A ∈ R^{R×p} hold a function
of row i in each draw and B ∈ R^{R×q} a function of row j whose rows are iid N(0, I_q) under the claim. With U the
left singular vectors of A for its r = rank(A) nonzero singular values (U spans A's columns),

    T = ‖Uᵀ B‖_F²  ~  χ²_{r·q}  exactly under H₀,

conditionally on A, hence unconditionally (B is independent of A, and UᵀB has iid N(0, 1) entries). Two tests per
pair (i, j):

* **coordinates**: A = z_i, B = z_j (q = d): sees any linear dependence (a repeated row, a shared component, a
  rotated copy);
* **magnitudes**: A = s(z_i), B = s(z_j) with s(x) = Φ⁻¹(P(|N(0,1)| ≤ |x|)) elementwise (normal scores of |z|,
  iid N(0, 1) under the claim): sees dependence of sizes (shared or comonotone norms, a shared scale).

A statistic that cannot be computed (a non-finite score, a regressor of rank 0) leaves its p-value NaN: the test
is undefined and never rejects (proofs/verification.md, item 6(c)).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

__all__ = ["cross_row_tests", "independent_pairs", "magnitude_scores", "regression_chi2"]


def independent_pairs(rows: list[int], block: int, independent: str | None) -> list[tuple[int, int]]:
    """The pairs (i, j), i < j, of tested ``rows`` that the claim makes independent: every pair for
    ``"rows"``, pairs in different blocks of ``block`` rows for ``"blocks"``, none for None."""
    if independent is None:
        return []
    if independent not in ("rows", "blocks"):
        raise ValueError(f"independent must be 'rows', 'blocks' or None, got {independent!r}")
    pairs = [(i, j) for i in rows for j in rows if i < j]
    return pairs if independent == "rows" else [(i, j) for i, j in pairs if i // block != j // block]


def magnitude_scores(z: np.ndarray) -> np.ndarray:
    """s(x) = Φ⁻¹(P(|N(0, 1)| ≤ |x|)) elementwise: Φ⁻¹(erf(|x|/√2)) for |x| < 1 (accurate down to the smallest
    subnormal) and −Φ⁻¹(2·Φ̄(|x|)) from log Φ̄ above (finite for every finite x); s(0) = −∞. If x ~ N(0, 1),
    s(x) ~ N(0, 1) exactly."""
    x = np.abs(z)
    small = special.ndtri(special.erf(np.minimum(x, 1.0) / math.sqrt(2.0)))
    log_tail = math.log(2.0) + stats.norm.logsf(np.maximum(x, 1.0))  # ≤ log(2·Φ̄(1)) < 0
    return np.where(x < 1.0, small, -special.ndtri_exp(log_tail))


def regression_chi2(a: np.ndarray, b: np.ndarray) -> tuple[float, int, float, float]:
    """(T, df, p, explained) of the test above for A [R, p] and B [R, q]: T = ‖UᵀB‖_F², df = rank(A)·q,
    p = P(χ²_df ≥ T), explained = T/‖B‖_F² (the share of B's squares that A explains; ≈ rank(A)/R under H₀).
    NaN p-value when A or B is not finite or rank(A) = 0."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan, 0, math.nan, math.nan
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    tol = (s.max() if s.size else 0.0) * max(a.shape) * np.finfo(np.float64).eps
    r = int((s > tol).sum())
    if r == 0:
        return math.nan, 0, math.nan, math.nan
    t = float(((u[:, :r].T @ b) ** 2).sum())
    df = r * b.shape[1]
    total = float((b * b).sum())
    return t, df, float(stats.chi2.sf(t, df)), t / total if total > 0 else math.nan


def cross_row_tests(zs: dict[int, np.ndarray], pairs: list[tuple[int, int]]):
    """Labels, statistics T, degrees of freedom, p-values and explained shares of the coordinate and magnitude
    tests for every pair, ``zs[i]`` [R, d] the standardised row i over the R draws."""
    scores = {i: magnitude_scores(z) for i, z in zs.items()}
    labels, ts, dfs, ps, shares = [], [], [], [], []
    for i, j in pairs:
        for what, src in (("coordinates", zs), ("magnitudes", scores)):
            t, df, p, share = regression_chi2(src[i], src[j])
            labels.append(f"rows {i}, {j} {what}")
            ts.append(t)
            dfs.append(df)
            ps.append(p)
            shares.append(share)
    return labels, ts, dfs, ps, shares
