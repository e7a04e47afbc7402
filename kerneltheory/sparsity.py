r"""Sparsity of attention: measures, inputs with controllable sparsity, floors and the rank ceiling (MATH.md §7).

**Measures** take attention matrices ``[..., n, n']`` (rows sum to 1) and return one value per row ``[..., n]``
(the two ranks return one value per matrix ``[...]``):

* :func:`row_entropy` — H(a_i) = −Σ_j a_ij log a_ij, divided by log n' (``normalised=True``): 0 for a one-hot
  row, 1 for the uniform row;
* :func:`top_k_mass` — the mass of the k largest weights;
* :func:`argmax_agreement` — 1 where the approximation's largest weight is one of the reference's largest;
* :func:`kl_rows` — KL(p_i ‖ q_i) = Σ_j p_ij log(p_ij / q_ij) (+∞ where q_ij = 0 < p_ij);
* :func:`rank_correlation` — Spearman's ρ between the scores q_iᵀk_j and the weights a_ij (monotonicity);
* :func:`kernel_floor` — min_j κ_ij / max_j κ_ij (the same for κ and for its normalised rows);
* :func:`small_weight_relative_error` — mean |â_ij − a_ij| / a_ij over the keys with the smallest reference
  weights;
* :func:`effective_rank` — exp of the entropy of the normalised singular values σ/‖σ‖₁ (Roy & Vetterli 2007,
  "The effective rank: a measure of effective dimensionality", EUSIPCO, Def. 1); :func:`stable_rank` —
  ‖A‖_F²/‖A‖₂². Both are ≤ rank A; the effective rank is the one the docs and figures use.

Input validation (:func:`check_attention`): finite entries; for the measures that read rows as probability
distributions, entries ≥ 0 and |Σ_j a_ij − 1| ≤ 4(n' + 2)·ε·Σ_j|a_ij| (ε of the dtype). The floor covers
forming z = Σ_j κ_ij (γ_{n'} relative error), dividing by it (ε per entry) and re-summing (γ_{n'}), with a
factor 2 to spare (Higham 2002, §3.1); a matrix that misses it is not a normalised attention matrix and the
error names the argument and the worst row. Signed approximations (trig features) may be passed to the
measures that do not need probabilities, or explicitly projected with :func:`clip_renormalise`.

**Inputs with controllable sparsity.** :func:`planted_keys` plants, for each of n ≤ d queries, k keys whose
score qᵀk/√d is exactly ``margin`` while every other score is exactly 0, so the softmax mass on the planted
keys, :func:`planted_mass`, and the row entropy, :func:`planted_entropy`, are closed forms.
:func:`temperature_inputs` scales Gaussian queries and keys so that the mean normalised row entropy of softmax
attention equals a target, by bisection on the inverse temperature β with a certified bracket
(proofs/sparsity.md, item 2).

**Floors and the rank ceiling.** A kernel whose rows satisfy min κ / max κ ≥ f cannot put more than
k/(k + (n' − k)f) of a row's mass on k keys (:func:`top_k_ceiling`); elu + 1, the feed-forward kernel and
Hedgehog have explicit floors on bounded inputs (:func:`elu_floor_bound`, :func:`feedforward_floor_bound`,
:func:`hedgehog_floor_bound`). The attention matrix of a D-dimensional map has rank ≤ D, so its Frobenius
error against any target is at least the Eckart–Young tail (Σ_{i>D} σ_i²)^{1/2} (:func:`rank_floor`), which
is a closed form for planted targets (:func:`planted_rank_floor`). Proofs: proofs/sparsity.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from ._validation import (
    FLOAT_DTYPES,
    check_dtype,
    check_generator,
    check_int,
    check_points,
    check_real,
    check_tensor_device,
    representable,
)
from .attention import finite_scores

__all__ = [
    "PlantedKeys",
    "TemperatureInputs",
    "argmax_agreement",
    "check_attention",
    "clip_renormalise",
    "effective_rank",
    "elu_floor_bound",
    "feedforward_floor_bound",
    "hedgehog_floor_bound",
    "kernel_floor",
    "kl_rows",
    "margin_for_mass",
    "mean_entropy",
    "planted_entropy",
    "planted_keys",
    "planted_mass",
    "planted_rank_floor",
    "planted_singular_values",
    "rank_correlation",
    "rank_floor",
    "row_entropy",
    "row_sum_tolerance",
    "small_weight_relative_error",
    "softmax_floor_bound",
    "softmax_matrix",
    "stable_rank",
    "temperature_inputs",
    "top_k_ceiling",
    "top_k_mass",
]


# ---------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------


def _matrix(a, name: str) -> torch.Tensor:
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [..., n, n'], got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    check_tensor_device(a, name)
    if a.dim() < 2 or a.shape[-1] == 0:
        raise ValueError(f"{name} must have shape [..., n, n'] with n' >= 1, got {tuple(a.shape)}")
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def row_sum_tolerance(a: torch.Tensor) -> torch.Tensor:
    """The rounding floor 4(n' + 2)·ε·Σ_j|a_ij| of each row sum, ``[..., n]`` (module docstring)."""
    eps = torch.finfo(a.dtype).eps
    return 4 * (a.shape[-1] + 2) * eps * a.abs().sum(-1)


def check_attention(a, name: str = "a", *, probabilities: bool = True) -> torch.Tensor:
    """Check a ``[..., n, n']`` attention matrix: finite; with ``probabilities``, entries ≥ 0 and every row sum
    within :func:`row_sum_tolerance` of 1. Raises ValueError naming ``name`` and the offending row."""
    a = _matrix(a, name)
    if not probabilities:
        return a
    neg = (a < 0).any(-1)
    if bool(neg.any()):
        idx = tuple(int(i) for i in neg.nonzero()[0])
        raise ValueError(
            f"{name} must have non-negative entries (rows are probability distributions); row {idx} has "
            f"min {float(a[idx].min()):.6g} (project a signed approximation with clip_renormalise)"
        )
    dev = (a.sum(-1) - 1).abs()
    bad = dev > row_sum_tolerance(a)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"the rows of {name} must sum to 1 within 4(n'+2)·eps·Σ|a| = {float(row_sum_tolerance(a)[idx]):.3g};"
            f" row {idx} sums to {float(a[idx].sum()):.17g}"
        )
    return a


def clip_renormalise(a: torch.Tensor, name: str = "a") -> torch.Tensor:
    """max(a_ij, 0) / Σ_j max(a_ij, 0): the explicit projection of a signed approximation (trig features) onto
    probability rows, for measures that need them. Raises ValueError if a row has no positive entry."""
    a = _matrix(a, name)
    c = a.clamp(min=0)
    s = c.sum(-1, keepdim=True)
    if bool((s <= 0).any()):
        idx = tuple(int(i) for i in (s[..., 0] <= 0).nonzero()[0])
        raise ValueError(f"row {idx} of {name} has no positive entry: it cannot be renormalised")
    return c / s


# ---------------------------------------------------------------------------------------------------
# Per-row measures
# ---------------------------------------------------------------------------------------------------


def row_entropy(a: torch.Tensor, *, normalised: bool = True) -> torch.Tensor:
    """H(a_i) = −Σ_j a_ij log a_ij (0 log 0 = 0), divided by log n' when ``normalised`` (a row over a single
    key has normalised entropy 0). ``[..., n, n'] → [..., n]``; 0 for one-hot rows, 1 for uniform rows."""
    a = check_attention(a)
    h = -torch.special.xlogy(a, a).sum(-1)
    if not normalised:
        return h
    n = a.shape[-1]
    return h / math.log(n) if n > 1 else torch.zeros_like(h)


def top_k_mass(a: torch.Tensor, k: int) -> torch.Tensor:
    """Σ of the k largest weights of each row, ``[..., n]``; 1 ≤ k ≤ n'. At least k/n' for every row."""
    a = check_attention(a)
    k = check_int(k, "k", minimum=1, maximum=a.shape[-1])
    return a.topk(k, dim=-1).values.sum(-1)


def kl_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p_i ‖ q_i) = Σ_j p_ij log(p_ij / q_ij) per row, ``[..., n]`` (terms with p_ij = 0 are 0; +∞ where
    q_ij = 0 < p_ij). ``p`` is the reference (softmax) row, ``q`` the approximation."""
    p = check_attention(p, "p")
    q = check_attention(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    terms = torch.special.xlogy(p, p) - torch.special.xlogy(p, q)
    return terms.sum(-1).clamp(min=0.0)  # Gibbs: KL ≥ 0; a negative sum is rounding of a 0


def argmax_agreement(reference: torch.Tensor, approx: torch.Tensor) -> torch.Tensor:
    """1.0 where the approximation's largest weight (first index among ties) is a largest weight of the
    reference row, else 0.0; ``[..., n]``. ``approx`` may be signed (trig features)."""
    reference = check_attention(reference, "reference")
    approx = _matrix(approx, "approx")
    if reference.shape != approx.shape:
        raise ValueError(
            f"reference and approx must have the same shape, got {tuple(reference.shape)} and {tuple(approx.shape)}"
        )
    picked = reference.gather(-1, approx.argmax(-1, keepdim=True))[..., 0]
    return (picked == reference.amax(-1)).to(reference.dtype)


def rank_correlation(
    scores: torch.Tensor, weights: torch.Tensor, *, undefined: str = "raise"
) -> torch.Tensor:
    """Spearman's ρ per row between ``scores`` (q_iᵀk_j) and ``weights`` (a_ij), ties given average ranks;
    ``[..., n]``. 1 for any weights strictly increasing in the scores (softmax). ρ is undefined for a row that
    is constant in either argument: ``undefined="raise"`` (default) raises ValueError naming the row,
    ``"nan"`` returns NaN there."""
    scores = _matrix(scores, "scores")
    weights = _matrix(weights, "weights")
    if scores.shape != weights.shape:
        raise ValueError(
            f"scores and weights must have the same shape, got {tuple(scores.shape)} and {tuple(weights.shape)}"
        )
    if undefined not in ("raise", "nan"):
        raise ValueError(f"undefined must be 'raise' or 'nan', got {undefined!r}")
    rs = stats.rankdata(scores.detach().cpu().double().numpy(), axis=-1)
    rw = stats.rankdata(weights.detach().cpu().double().numpy(), axis=-1)
    rs, rw = rs - rs.mean(-1, keepdims=True), rw - rw.mean(-1, keepdims=True)
    den = np.sqrt((rs**2).sum(-1) * (rw**2).sum(-1))
    if undefined == "raise" and bool((den == 0).any()):
        idx = tuple(int(i) for i in np.argwhere(den == 0)[0])
        raise ValueError(f"Spearman's rho is undefined for row {idx}: scores or weights are constant there")
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, (rs * rw).sum(-1) / np.where(den > 0, den, 1.0), np.nan)
    return torch.from_numpy(rho).to(device=weights.device, dtype=weights.dtype)


def kernel_floor(kappa: torch.Tensor) -> torch.Tensor:
    """min_j κ_ij / max_j κ_ij per row, ``[..., n]``, for a non-negative Gram matrix or attention matrix (the
    normalisation cancels). 1 for a constant row, 0 for a row with a zero weight."""
    kappa = _matrix(kappa, "kappa")
    if bool((kappa < 0).any()):
        raise ValueError("kappa must be non-negative (the floor of a signed kernel is not defined)")
    top = kappa.amax(-1)
    if bool((top <= 0).any()):
        idx = tuple(int(i) for i in (top <= 0).nonzero()[0])
        raise ValueError(f"row {idx} of kappa is identically 0: its floor is not defined")
    return kappa.amin(-1) / top


def top_k_ceiling(floor, n_keys: int, k: int):
    """k / (k + (n' − k)·f): the largest mass a row with floor min/max ≥ f can put on k of its n' keys
    (proofs/sparsity.md, item 4). ``floor`` a number or a tensor in [0, 1]."""
    n = check_int(n_keys, "n_keys", minimum=1)
    k = check_int(k, "k", minimum=1, maximum=n)
    if isinstance(floor, torch.Tensor):
        if not floor.is_floating_point():
            raise ValueError(f"floor must be a floating tensor, got {floor.dtype}")
        f = check_tensor_device(floor, "floor")
    else:
        f = torch.as_tensor(check_real(floor, "floor"), dtype=torch.float64)
    if not bool(((f >= 0) & (f <= 1)).all()):  # also refuses NaN
        raise ValueError("floor must lie in [0, 1]")
    out = k / (k + (n - k) * f)
    return float(out) if not isinstance(floor, torch.Tensor) else out


def small_weight_relative_error(
    reference: torch.Tensor, approx: torch.Tensor, *, quantile: float = 0.25
) -> torch.Tensor:
    """Mean over the keys whose reference weight is at most the row's ``quantile`` (lower quantile of the
    row's weights, at least one key) of |â_ij − a_ij| / a_ij; ``[..., n]``. ``approx`` may be signed; every
    selected reference weight must be > 0 (softmax weights are, unless they underflow)."""
    reference = check_attention(reference, "reference")
    approx = _matrix(approx, "approx")
    if reference.shape != approx.shape:
        raise ValueError(
            f"reference and approx must have the same shape, got {tuple(reference.shape)} and {tuple(approx.shape)}"
        )
    qt = check_real(quantile, "quantile", minimum=0.0, maximum=1.0)
    cut = torch.quantile(reference, qt, dim=-1, keepdim=True, interpolation="lower")
    sel = reference <= cut
    if bool((reference[sel] <= 0).any()):
        raise ValueError("a selected reference weight is 0 (underflow): the relative error is not defined")
    safe = torch.where(sel, reference, torch.ones_like(reference))
    rel = torch.where(sel, (approx - reference).abs() / safe, torch.zeros_like(reference))
    return rel.sum(-1) / sel.sum(-1).to(reference.dtype)


# ---------------------------------------------------------------------------------------------------
# Ranks
# ---------------------------------------------------------------------------------------------------


def _scaled_svdvals(a: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ(A/c), c) with c = max|a_ij| per matrix (1 for a zero matrix): σ(A) = c·σ(A/c) without the overflow
    of forming σ(A) itself for huge entries (the SVD squares nothing, but its internal norms can overflow)."""
    a = _matrix(a, name)
    if a.shape[-2] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {tuple(a.shape)}")
    c = a.abs().amax((-2, -1), keepdim=True)
    c = torch.where(c > 0, c, torch.ones_like(c))
    return torch.linalg.svdvals(a / c), c[..., 0, 0]


def _svdvals(a: torch.Tensor, name: str) -> torch.Tensor:
    """σ(A/c) (see :func:`_scaled_svdvals`): enough for the scale-invariant rank measures."""
    s, _ = _scaled_svdvals(a, name)
    if bool((s.amax(-1) <= 0).any()):
        raise ValueError(f"{name} contains a zero matrix: its rank measures are not defined")
    return s


def effective_rank(a: torch.Tensor) -> torch.Tensor:
    """exp(−Σ_i p_i log p_i), p = σ/‖σ‖₁ (Roy & Vetterli 2007, Def. 1), per matrix ``[...]``.
    1 ≤ erank ≤ rank A; n for any multiple of an n × n orthogonal matrix, 1 for rank one."""
    s = _svdvals(a, "a")
    p = s / s.sum(-1, keepdim=True)
    return torch.exp(-torch.special.xlogy(p, p).sum(-1))


def stable_rank(a: torch.Tensor) -> torch.Tensor:
    """‖A‖_F² / ‖A‖₂² = Σ(σ_i/σ_1)², per matrix ``[...]``; 1 ≤ srank ≤ rank A. (Dividing before squaring keeps
    it finite where σ² underflows, e.g. entries of size 1e-272.)"""
    s = _svdvals(a, "a")
    return ((s / s[..., :1]) ** 2).sum(-1)


def rank_floor(a: torch.Tensor, rank: int) -> torch.Tensor:
    """(Σ_{i > rank} σ_i(A)²)^{1/2}, ``[...]``: by Eckart–Young–Mirsky the least Frobenius error ‖A − B‖_F of
    any B of rank ≤ ``rank``, hence of linear attention with a map of dimension D = ``rank``."""
    r = check_int(rank, "rank", minimum=0)
    s, c = _scaled_svdvals(a, "a")
    out = c * torch.sqrt((s[..., r:] ** 2).sum(-1))
    representable(out, "rank_floor(a)", {"a": a})
    return out


# ---------------------------------------------------------------------------------------------------
# Inputs with controllable sparsity
# ---------------------------------------------------------------------------------------------------


def softmax_matrix(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """softmax_j(scale·q_iᵀk_j), scale = 1/√d by default (the convention of attention.softmax_attention)."""
    check_points(q, "q")
    check_points(k, "k", dim=q.shape[-1])
    return torch.softmax(finite_scores(q, k, scale), dim=-1).to(q.dtype)


def _planted_parts(n_keys: int, k: int, margin: float):
    n = check_int(n_keys, "n_keys", minimum=1)
    k = check_int(k, "k", minimum=1, maximum=n)
    m = check_real(margin, "margin", minimum=0.0)
    return n, k, m


def planted_mass(n_keys: int, k: int, margin: float) -> float:
    """Softmax mass on k keys at score Δ = ``margin`` among n' keys at score 0 otherwise:
    k e^Δ / (k e^Δ + n' − k) = 1 / (1 + (n' − k) e^{−Δ}/k)."""
    n, k, m = _planted_parts(n_keys, k, margin)
    return 1.0 / (1.0 + (n - k) * math.exp(-m) / k)


def margin_for_mass(mass: float, n_keys: int, k: int) -> float:
    """The inverse of :func:`planted_mass`: Δ = log((n' − k)/k · mass/(1 − mass)), for k/n' ≤ mass < 1."""
    n, k, _ = _planted_parts(n_keys, k, 0.0)
    lo = k / n
    mass = check_real(mass, "mass", minimum=lo, maximum=1.0, strict_max=True)
    if k == n:
        raise ValueError("with k = n_keys every margin gives mass 1: no margin to solve for")
    return max(0.0, math.log((n - k) / k * mass / (1.0 - mass)))


def planted_entropy(n_keys: int, k: int, margin: float) -> float:
    """Normalised entropy of a planted row: p = mass/k on k keys, (1 − mass)/(n' − k) on the others."""
    n, k, m = _planted_parts(n_keys, k, margin)
    if n == 1:
        return 0.0
    mass = planted_mass(n, k, m)
    h = -mass * math.log(mass / k)
    if n > k and mass < 1.0:
        h -= (1 - mass) * math.log((1 - mass) / (n - k))
    return h / math.log(n)


@dataclass(frozen=True)
class PlantedKeys:
    """Queries ``q`` [n, d] and keys ``k`` [n', d] with q_iᵀk_j/√d = ``margin`` for j in row i's support
    (``support`` [n, n'] bool, k keys per row, disjoint) and 0 otherwise. ``mass`` and ``entropy`` are the
    exact softmax mass on the support and normalised row entropy (every row has the same)."""

    q: torch.Tensor
    k: torch.Tensor
    support: torch.Tensor
    margin: float
    mass: float
    entropy: float

    def softmax(self) -> torch.Tensor:
        return softmax_matrix(self.q, self.k)


def _haar_orthogonal(d: int, generator: torch.Generator) -> torch.Tensor:
    g = torch.randn(d, d, generator=generator, dtype=torch.float64)
    qm, r = torch.linalg.qr(g)
    return qm * torch.sign(torch.diagonal(r)).where(
        torch.diagonal(r) != 0, torch.ones(d, dtype=torch.float64)
    )


def planted_keys(
    n: int,
    d: int,
    k: int,
    margin: float,
    generator: torch.Generator,
    *,
    distractors: int = 0,
    distractor_norm: float | None = None,
    jitter: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> PlantedKeys:
    r"""n queries (n ≤ d), each with k planted keys of score exactly Δ = ``margin`` ≥ 0, all other scores 0.

    With u_1..u_d the columns of a Haar-random orthogonal matrix: q_i = a u_i, planted key of row i
    a u_i + j·v, distractor s·v', with a = √Δ·d^{1/4} (so ‖q̃_i‖² = Δ for q̃ = q d^{−1/4}), v, v' random unit
    vectors in span(u_{n+1}..u_d), j = ``jitter``·d^{1/4}, s = ``distractor_norm``·d^{1/4} (default √Δ: every
    key has the norm of the queries, so norms carry no cue). Then q_iᵀk/√d = Δ on row i's support and 0
    elsewhere, exactly, so the mass on the support is :func:`planted_mass` (n' = n·k + ``distractors``).
    Keys are ordered by group (row 0's k keys first), then distractors. Jitter and non-zero distractors
    need n < d.
    """
    n = check_int(n, "n", minimum=1)
    d = check_int(d, "d", minimum=1)
    k = check_int(k, "k", minimum=1)
    margin = check_real(margin, "margin", minimum=0.0)
    check_generator(generator)
    r = check_int(distractors, "distractors", minimum=0)
    jit = check_real(jitter, "jitter", minimum=0.0)
    dn = (
        math.sqrt(margin)
        if distractor_norm is None
        else check_real(distractor_norm, "distractor_norm", minimum=0)
    )
    check_dtype(dtype)
    if n > d:
        raise ValueError(f"n must be <= d = {d} (queries in orthonormal directions), got {n}")
    needs_complement = jit > 0 or (r > 0 and dn > 0)
    if needs_complement and n == d:
        raise ValueError(
            f"jitter > 0 or distractors with a non-zero norm need n < d (a complement), got n = d = {d}"
        )
    u = _haar_orthogonal(d, generator)
    basis, comp = u[:, :n].T, u[:, n:].T  # [n, d], [d - n, d]

    def complement_units(count: int) -> torch.Tensor:
        if count == 0 or comp.shape[0] == 0:
            return torch.zeros(count, d, dtype=torch.float64)
        c = torch.randn(count, comp.shape[0], generator=generator, dtype=torch.float64)
        return (c / c.norm(dim=-1, keepdim=True)) @ comp

    root = d**0.25
    a = math.sqrt(margin) * root
    q = a * basis
    planted = (a * basis).repeat_interleave(k, dim=0) + jit * root * complement_units(n * k)
    keys = torch.cat([planted, dn * root * complement_units(r)])
    n_keys = n * k + r
    support = torch.zeros(n, n_keys, dtype=torch.bool)
    for i in range(n):
        support[i, i * k : (i + 1) * k] = True
    return PlantedKeys(
        q.to(dtype),
        keys.to(dtype),
        support,
        margin,
        planted_mass(n_keys, k, margin),
        planted_entropy(n_keys, k, margin),
    )


def planted_singular_values(n: int, n_keys: int, k: int, margin: float) -> tuple[float, float]:
    """(σ_1, σ_rest) of the planted softmax target A = ((e^Δ − 1)B + 11ᵀ)/Z, Z = k e^Δ + n' − k, B the row
    supports (BBᵀ = kI): σ_rest = √k (e^Δ − 1)/Z with multiplicity n − 1, σ_1² = (k(e^Δ − 1)² + n(2k(e^Δ − 1)
    + n'))/Z² (proofs/sparsity.md, item 5)."""
    n = check_int(n, "n", minimum=1)
    nk, k, m = _planted_parts(n_keys, k, margin)
    if n * k > nk:
        raise ValueError(f"n·k = {n * k} planted keys do not fit in n_keys = {nk}")
    e1 = math.expm1(m)
    z = k * math.exp(m) + nk - k
    s1 = math.sqrt(k * e1**2 + n * (2 * k * e1 + nk)) / z
    return s1, math.sqrt(k) * e1 / z


def planted_rank_floor(n: int, n_keys: int, k: int, margin: float, rank: int) -> float:
    """Eckart–Young floor min_{rank B ≤ D} ‖A − B‖_F for the planted target: √((n − D)k)(e^Δ − 1)/Z for
    1 ≤ D < n, 0 for D ≥ n, ‖A‖_F for D = 0."""
    s1, s = planted_singular_values(n, n_keys, k, margin)
    r = check_int(rank, "rank", minimum=0)
    if r == 0:
        return math.sqrt(s1**2 + (n - 1) * s**2)
    return math.sqrt(max(n - r, 0)) * s


def mean_entropy(q: torch.Tensor, k: torch.Tensor, beta: float = 1.0) -> float:
    """Mean normalised row entropy of softmax(β·qkᵀ/√d)."""
    b = check_real(beta, "beta", minimum=0.0)
    return float(row_entropy(softmax_matrix(q, k, b / math.sqrt(q.shape[-1]))).mean())


@dataclass(frozen=True)
class TemperatureInputs:
    """Scaled queries and keys whose softmax attention has mean normalised row entropy ``entropy``,
    |entropy − target| ≤ ``bracket`` (certified by monotonicity); ``beta`` the inverse temperature."""

    q: torch.Tensor
    k: torch.Tensor
    beta: float
    target: float
    entropy: float
    bracket: float

    def softmax(self) -> torch.Tensor:
        return softmax_matrix(self.q, self.k)


def temperature_inputs(
    n: int,
    d: int,
    target_entropy: float,
    generator: torch.Generator,
    *,
    n_keys: int | None = None,
    tol: float = 1e-6,
    split: str = "symmetric",
    dtype: torch.dtype = torch.float64,
) -> TemperatureInputs:
    r"""Queries q ~ N(0, I) [n, d] and keys [n', d], scaled so that the mean normalised row entropy of
    softmax(qkᵀ/√d) is ``target_entropy`` ∈ (0, 1] within ``tol``.

    The scores scale by β: both sides by √β (``split="symmetric"``) or the queries by β (``"query"``).
    Row entropy is non-increasing in β (dH/dβ = −β Var_{p_β}(s) ≤ 0, proofs/sparsity.md item 2), so the
    mean is too: β is bracketed by doubling, then bisected while H(β_lo) − H(β_hi) > tol; the returned β
    (the midpoint) has |H(β) − target| ≤ ``bracket`` = H(β_lo) − H(β_hi) ≤ tol. Bisection needs at most
    ⌈log₂(L·β_hi/tol)⌉ + 1 steps, L = β_hi·max_i range_j(s_ij)²/(4 log n') the Lipschitz constant of H on
    [0, β_hi] (Popoviciu: Var ≤ range²/4); the loop is capped there and ``bracket`` reports what it reached.
    """
    n = check_int(n, "n", minimum=1)
    d = check_int(d, "d", minimum=1)
    nk = check_int(n if n_keys is None else n_keys, "n_keys", minimum=2)
    target = check_real(target_entropy, "target_entropy", minimum=0.0, maximum=1.0, strict_min=True)
    tol = check_real(tol, "tol", minimum=1e-12, maximum=0.5)
    if split not in ("symmetric", "query"):
        raise ValueError(f"split must be 'symmetric' or 'query', got {split!r}")
    check_generator(generator)
    check_dtype(dtype)
    q0 = torch.randn(n, d, generator=generator, dtype=torch.float64)
    k0 = torch.randn(nk, d, generator=generator, dtype=torch.float64)

    def scaled(beta: float):
        if split == "symmetric":
            return q0 * math.sqrt(beta), k0 * math.sqrt(beta)
        return q0 * beta, k0

    def h(beta: float) -> float:
        return mean_entropy(q0, k0, beta)

    if target >= h(0.0) - 1e-15:  # β = 0 gives uniform rows, entropy 1
        q, k = scaled(0.0)
        return TemperatureInputs(q.to(dtype), k.to(dtype), 0.0, target, h(0.0), abs(h(0.0) - target))
    lo, hi = 0.0, 1.0
    for _ in range(64):
        if h(hi) <= target:
            break
        lo, hi = hi, 2 * hi
    else:
        raise ValueError(
            f"target_entropy {target} is below what these scores reach (H(β = {hi:g}) = {h(hi):.3g})"
        )
    s = q0 @ k0.T / math.sqrt(d)
    rng = float((s.amax(-1) - s.amin(-1)).max())
    lip = hi * rng**2 / (4 * math.log(nk))
    steps = max(1, math.ceil(math.log2(max(lip * hi / tol, 2.0))) + 1)
    h_lo, h_hi = h(lo), h(hi)
    for _ in range(min(steps, 200)):
        if h_lo - h_hi <= tol:
            break
        mid = 0.5 * (lo + hi)
        h_mid = h(mid)
        if h_mid > target:
            lo, h_lo = mid, h_mid
        else:
            hi, h_hi = mid, h_mid
    beta = 0.5 * (lo + hi)
    q, k = scaled(beta)
    return TemperatureInputs(q.to(dtype), k.to(dtype), beta, target, h(beta), max(h_lo - h_hi, 0.0))


# ---------------------------------------------------------------------------------------------------
# Kernel floors on bounded inputs (proofs/sparsity.md, item 4)
# ---------------------------------------------------------------------------------------------------


def softmax_floor_bound(radius: float) -> float:
    """SM(x, y) = exp(xᵀy) on ‖x‖, ‖y‖ ≤ r: min/max over a row ≥ e^{−2r²} (xᵀy ∈ [−r², r²])."""
    r = check_real(radius, "radius", minimum=0.0)
    return math.exp(-2 * r * r)


def elu_floor_bound(radius: float) -> float:
    """elu + 1 on ‖x‖_∞ ≤ R (e.g. ‖x‖₂ ≤ R): φ_l ∈ [e^{−R}, 1 + R], so min κ / max κ ≥ e^{−2R}/(1 + R)²."""
    r = check_real(radius, "radius", minimum=0.0)
    return math.exp(-2 * r) / (1 + r) ** 2


def _softplus(u: float) -> float:
    return max(u, 0.0) + math.log1p(math.exp(-abs(u)))


def feedforward_floor_bound(component, radius: float) -> float:
    r"""The feed-forward kernel (features.feedforward.Feedforward) on ‖x‖₂ ≤ R: with H = ‖W₁‖₂R + ‖b₁‖₂ (the
    GLU variant: W_a, b_a) every hidden vector has ‖g(x)‖₂ ≤ H (|gelu u|, |relu u|, |tanh u| ≤ |u|;
    |σ| ≤ 1), each pre-activation |u_l| ≤ U = max_l(‖(W₂)_l‖₂H + |(b₂)_l|), so φ_l ∈ [softplus(−U),
    softplus(U)] and min κ / max κ ≥ (softplus(−U)/softplus(U))²."""
    r = check_real(radius, "radius", minimum=0.0)
    with torch.no_grad():
        w1, b1 = (component.w_a, component.b_a) if component.glu else (component.w1, component.b1)
        hid = float(torch.linalg.matrix_norm(w1.double(), ord=2)) * r + float(b1.double().norm())
        u = float((component.w2.double().norm(dim=-1) * hid + component.b2.double().abs()).max())
    return (_softplus(-u) / _softplus(u)) ** 2


def hedgehog_floor_bound(component, radius: float) -> float:
    """Hedgehog (unnormalised) on ‖x‖₂ ≤ R: u = Wx + b has |u_l| ≤ U = max_l(‖W_l‖₂R + |b_l|) and
    κ(x, y) = 2Σ_l cosh(u_l(x) + u_l(y)) ∈ [2d, 2d cosh 2U], so min κ / max κ ≥ 1/cosh(2U)."""
    r = check_real(radius, "radius", minimum=0.0)
    if component.normalize:
        raise ValueError("hedgehog_floor_bound covers the unnormalised map (normalize=False) only")
    with torch.no_grad():
        u = float((component.weight.double().norm(dim=-1) * r + component.bias.double().abs()).max())
    return 1.0 / math.cosh(2 * u)
