r"""Kernelized substitutions in the Turing constructions: replace a hardmax selection by normalised kernel
attention and measure what it costs (MATH.md §5–6, proofs/turing.md §4–6, proofs/rank_bound.md).

(a) exp(β·score): :class:`~kerneltheory.turing.layers.ExpScore`; :func:`minimal_beta` bisects the smallest β
    that keeps the whole trace exact (``first_error`` of the constructions), for the Pérez construction
    (layer 1, score gap 1, :data:`PEREZ_LAYER1_BETA`; layer 3, gap Θ(T⁻⁵): :func:`layer3_gaps`,
    :func:`layer3_sufficient_beta`) and the bit construction (every gap ≥ 2).
(b) For k ∈ {±1}^b and any real q, exp(β qᵀk) = Π_l (cosh βq_l + k_l sinh βq_l) = φ_q(q)ᵀφ_k(k) with
    φ_k(k)_S = Π_{l∈S} k_l and φ_q(q)_S = Π_{l∉S} cosh βq_l Π_{l∈S} sinh βq_l over subsets S ⊆ {1..b}: an
    exact feature map of dimension 2^b (:class:`CoshSinhMap`; for q ∈ {±1}^b too, :func:`symmetric_features` is
    the symmetric split φ_S = (cosh^{b−|S|}β sinh^{|S|}β)^{1/2} Π_{l∈S} x_l of MATH.md §6). Linear
    attention with it (:class:`LinearSelection`, which calls :func:`kerneltheory.attention.linear_attention`)
    *is* softmax(β·score) attention; in rational arithmetic with e^β = r rational it is exact
    (:class:`ExactFeatureSelection`).
(c) Random positive features for exp(β qᵀk) = SM(√β q, √β k): :class:`LinearSelection` with a drawn
    FeatureMap and ``scale = √β``; :func:`random_feature_success` is the fraction of exact traces over seeds.
(d) Averaging (Pérez layer 2, all keys equal): any normalised kernel with κ(q, k̄) ≠ 0 gives uniform weights
    (:class:`KernelSelection`).

The rank obstruction: :func:`permutation_distance_bound`, :func:`best_rank_error`, :func:`target_mass`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np
import torch

from ..attention import kernel_attention, linear_attention
from .bits import BitTransformer
from .layers import ExpScore, Selection
from .machine import Trace, TuringMachine
from .perez import PerezTransformer

# ---------------------------------------------------------------------------------------------------
# (b) the exact cosh/sinh feature map
# ---------------------------------------------------------------------------------------------------


def sign_features(k):
    """φ_k(k)_S = Π_{l∈S} k_l for k ∈ {±1}^b (``[..., n, b]`` → ``[..., n, 2^b]``)."""
    one = torch.ones_like(k[..., 0]) if isinstance(k, torch.Tensor) else np.ones_like(k[..., 0])
    return _kron([(one, k[..., l]) for l in range(k.shape[-1])])


def hyperbolic_features(q, beta: float):
    """φ_q(q)_S = Π_{l∉S} cosh βq_l Π_{l∈S} sinh βq_l (``[..., n, b]`` → ``[..., n, 2^b]``, torch float)."""
    return _kron([(torch.cosh(beta * q[..., l]), torch.sinh(beta * q[..., l])) for l in range(q.shape[-1])])


def rational_hyperbolic_features(q: np.ndarray, ratio: Fraction) -> np.ndarray:
    """The same with e^β = ``ratio`` rational and integer q: cosh βq = (r^q + r^{−q})/2, sinh βq = (r^q − r^{−q})/2,
    exactly (numpy object arrays of Fractions)."""
    ratio = Fraction(ratio)

    def pw(v):
        if Fraction(v).denominator != 1:
            raise ValueError(f"rational cosh/sinh features need integer query coordinates, got {v}")
        return ratio ** int(v)

    cols = []
    for l in range(q.shape[-1]):
        up = np.array([pw(v) for v in q[..., l].ravel()], dtype=object).reshape(q.shape[:-1])
        down = np.array([1 / v for v in up.ravel()], dtype=object).reshape(q.shape[:-1])
        cols.append(((up + down) / 2, (up - down) / 2))
    return _kron(cols)


def symmetric_features(x: torch.Tensor, beta: float) -> torch.Tensor:
    """MATH.md §6's symmetric map for x ∈ {±1}^b, β ≥ 0: φ_S(x) = (cosh^{b−|S|}β sinh^{|S|}β)^{1/2} Π_{l∈S} x_l."""
    if beta < 0:
        raise ValueError(f"beta must be ≥ 0 for the symmetric map, got {beta}")
    c, s = math.sqrt(math.cosh(beta)), math.sqrt(math.sinh(beta))
    one = torch.ones_like(x[..., 0])
    return _kron([(c * one, s * x[..., l]) for l in range(x.shape[-1])])


def _kron(factors):
    """Kronecker product over l of the 2-vectors (off_l, on_l) (each ``[...]``), feature index
    S = Σ_{l∈S} 2^l, as ``[..., 2^b]``."""
    is_torch = isinstance(factors[0][0], torch.Tensor)
    stack = (
        (lambda a, b: torch.stack([a, b], dim=-1)) if is_torch else (lambda a, b: np.stack([a, b], axis=-1))
    )
    out = stack(*factors[0])
    for off, on in factors[1:]:
        pair = stack(off, on)  # [..., 2]
        out = (pair[..., :, None] * out[..., None, :]).reshape(*out.shape[:-1], -1)
    return out


class CoshSinhMap:
    """The exact 2^b-dimensional map of exp(β qᵀk) for keys k ∈ {±1}^b and real queries:
    ``.query(q) = φ_q``, ``.key(k) = φ_k`` (usable with :func:`kerneltheory.attention.linear_attention`)."""

    def __init__(self, beta: float):
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta!r}")
        self.beta = float(beta)

    def query(self, q: torch.Tensor) -> torch.Tensor:
        return hyperbolic_features(q, self.beta)

    def key(self, k: torch.Tensor) -> torch.Tensor:
        if not bool(((k == 1) | (k == -1)).all()):
            raise ValueError("CoshSinhMap keys must be ±1 vectors")
        return sign_features(k)

    def __repr__(self):
        return f"CoshSinhMap(beta={self.beta:g})"


# ---------------------------------------------------------------------------------------------------
# Kernel selections (operate on raw query/key vectors, not on scores)
# ---------------------------------------------------------------------------------------------------


class LinearSelection(Selection):
    """Normalised linear attention φ(q)ᵀΣ_j φ(k_j)v_jᵀ / φ(q)ᵀΣ_j φ(k_j) through
    :func:`kerneltheory.attention.linear_attention`; q and k are multiplied by ``scale`` first (√β for
    random features of SM targeting exp(β qᵀk))."""

    uses_scores = False

    def __init__(self, feature_map, scale: float = 1.0, stabilise: bool = True):
        self.feature_map, self.scale, self.stabilise = feature_map, float(scale), stabilise

    def __call__(self, q, keys, scores, values):
        qt = torch.as_tensor(np.asarray(q, dtype=np.float64))[None] * self.scale
        kt = torch.as_tensor(np.asarray(keys, dtype=np.float64)) * self.scale
        vt = torch.as_tensor(np.asarray(values, dtype=np.float64))
        out = linear_attention(qt, kt, vt, self.feature_map, stabilise=self.stabilise)
        return out[0].numpy()

    def __repr__(self):
        return f"LinearSelection({self.feature_map!r}, scale={self.scale:g})"


class KernelSelection(Selection):
    """Normalised kernel attention Σ_j κ(q, k_j)v_j / Σ_j κ(q, k_j) through
    :func:`kerneltheory.attention.kernel_attention`, for any Gram-matrix callable κ."""

    uses_scores = False

    def __init__(self, kernel: Callable):
        self.kernel = kernel

    def __call__(self, q, keys, scores, values):
        qt = torch.as_tensor(np.asarray(q, dtype=np.float64))[None]
        kt = torch.as_tensor(np.asarray(keys, dtype=np.float64))
        vt = torch.as_tensor(np.asarray(values, dtype=np.float64))
        return kernel_attention(qt, kt, vt, self.kernel)[0].numpy()


class ExactFeatureSelection(Selection):
    """Linear attention in exact arithmetic: φ_q(q)ᵀ(Σ_j φ_k(k_j)v_jᵀ) / φ_q(q)ᵀΣ_j φ_k(k_j), with
    ``query_map``/``key_map`` acting on numpy object arrays (e.g. :func:`rational_hyperbolic_features`,
    :func:`sign_features`)."""

    uses_scores = False

    def __init__(self, query_map: Callable, key_map: Callable):
        self.query_map, self.key_map = query_map, key_map

    def __call__(self, q, keys, scores, values):
        fq = self.query_map(np.asarray(q)[None])[0]
        fk = self.key_map(np.asarray(keys))
        state = fk.T @ values  # [D, d_v]: Σ_j φ(k_j) v_jᵀ
        norm = fk.sum(axis=0)  # [D]: Σ_j φ(k_j)
        return (fq @ state) / (fq @ norm)


def rational_cosh_sinh(ratio: Fraction | int) -> ExactFeatureSelection:
    """(b) in exact arithmetic: the cosh/sinh map with e^β = ``ratio``, equal to
    :class:`~kerneltheory.turing.layers.RationalExpScore` (``ratio``) on ``"dot"`` scores."""
    return ExactFeatureSelection(lambda q: rational_hyperbolic_features(q, Fraction(ratio)), sign_features)


# ---------------------------------------------------------------------------------------------------
# (a) minimal β, predicted gaps
# ---------------------------------------------------------------------------------------------------


def minimal_beta(
    passes: Callable[[float], bool],
    lo: float = 1e-2,
    hi: float = 1e3,
    rel_tol: float = 0.02,
    max_beta: float = 1e30,
) -> float:
    """Smallest β (to relative precision ``rel_tol``) with ``passes(β)``, by bisection on log β, assuming
    failure below and success above a threshold. ``hi`` is grown ×10 until it passes (``inf`` beyond
    ``max_beta``); returns ``lo`` if it already passes."""
    if passes(lo):
        return lo
    while not passes(hi):
        lo, hi = hi, hi * 10.0
        if hi > max_beta:
            return math.inf
    while hi / lo > 1 + rel_tol:
        mid = math.sqrt(lo * hi)
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


def perez_minimal_beta(
    machine: TuringMachine, word: Sequence[int], steps: int, layer: int, rel_tol: float = 0.02
) -> float:
    """(a) the smallest β of exp(β·score) in Pérez decoder layer ``layer`` (1: input lookup, 3: last write;
    the others hardmax) that keeps ``steps`` steps exact, float64."""
    ref = machine.run(word, steps)

    def passes(beta):
        return (
            PerezTransformer(machine, exact=False, selections={layer: ExpScore(beta)}).first_error(word, ref)
            is None
        )

    return minimal_beta(passes, lo=1e-2, hi=10.0, rel_tol=rel_tol)


def bit_minimal_beta(
    machine: TuringMachine,
    word: Sequence[int],
    steps: int,
    b: int,
    layers: Sequence[int] = (1, 3),
    rel_tol: float = 0.02,
) -> float:
    """The same for the bit construction, exp(β·score) in ``layers`` (one shared β)."""
    ref = machine.run(word, steps)

    def passes(beta):
        sel = {i: ExpScore(beta) for i in layers}
        return BitTransformer(machine, b, selections=sel).first_error(word, ref) is None

    return minimal_beta(passes, lo=1e-2, hi=10.0, rel_tol=rel_tol)


def _layer1_beta() -> float:
    """β* = −log x*, x* the root of 2x/(1−x) + 2x/(1−x)² = 1/2 (proofs/turing.md, Proposition 3)."""
    lo, hi = 1e-12, 0.5
    for _ in range(200):
        mid = (lo + hi) / 2
        if 2 * mid / (1 - mid) + 2 * mid / (1 - mid) ** 2 < 0.5:
            lo = mid
        else:
            hi = mid
    return -math.log(lo)


PEREZ_LAYER1_BETA = _layer1_beta()
"""Any β > PEREZ_LAYER1_BETA ≈ 2.25 in Pérez layer 1 (score −|t + 1 − j|, the rest hardmax) keeps every trace
exact, whatever the input length n and the horizon T: the tail Σ_{k≥1} 2e^{−βk} is geometric."""


def layer3_products(trace: Trace, t: int) -> np.ndarray:
    """⟨q_t, k_j⟩ = (c(t+1) − c(j))/((t+1)(j+1)) + 1/(3(t+1)²(j+1)²) of Pérez layer 3 for j = 0..t."""
    a = t + 1
    j = np.arange(t + 1) + 1.0
    dc = trace.heads[t + 1] - np.asarray(trace.heads[: t + 1], dtype=np.float64)
    return (3.0 * a * j * dc + 1.0) / (3.0 * a**2 * j**2)


def layer3_gaps(trace: Trace) -> np.ndarray:
    """Per step t: the score gap between the key layer 3 selects and the nearest competitor that changes the
    output (proofs/turing.md §4). On a first visit (j* = t) every j < t matters (its position value leaks
    into the first-visit test); on a revisit (j* = ℓ < t) the keys whose written symbol differs from v(ℓ),
    and the own position t.
    ``inf`` where no competitor matters."""
    out = np.full(trace.steps, math.inf)
    writes = np.asarray(trace.writes)
    for t in range(trace.steps):
        scores = -np.abs(layer3_products(trace, t))
        best = int(np.argmax(scores))
        if best == t:
            relevant = np.arange(t + 1) != t
        else:  # a different written symbol, or the own position (it lowers the visited flag)
            relevant = (writes[: t + 1] != writes[best]) | (np.arange(t + 1) == t)
        if relevant.any():
            out[t] = float(scores[best] - scores[relevant].max())
    return out


def layer3_gap(trace: Trace) -> float:
    """min_t of :func:`layer3_gaps`: the gap that sets the β exp(β·score) needs (β ≈ log(…)/gap)."""
    gaps = layer3_gaps(trace)
    return float(gaps.min()) if gaps.size else math.inf


def layer3_sufficient_beta(trace: Trace) -> float:
    """β_suff = max_t log(4(t+1)²)/gap_t: with exp(β·score) in Pérez layer 3 (the rest hardmax) and β > β_suff
    every emitted token is right (proofs/turing.md §4, Proposition 4). 0 if no competitor ever matters."""
    gaps = layer3_gaps(trace)
    t = np.arange(gaps.size)
    finite = np.isfinite(gaps)
    return float((np.log(4.0 * (t[finite] + 1) ** 2) / gaps[finite]).max()) if finite.any() else 0.0


def revisit_gap(t: int, last: int, earlier: int) -> float:
    """Layer-3 gap on a revisit, last visit ℓ against an earlier visit j of the same cell:
    (1/(j+1)² − 1/(ℓ+1)²)/(3(t+1)²) ≈ 4/(3t⁵) for ℓ = t − 1, j = t − 3 (the T⁻⁵ of MATH.md §6)."""
    return (1 / (earlier + 1) ** 2 - 1 / (last + 1) ** 2) / (3 * (t + 1) ** 2)


def first_visit_gap(t: int, competitor: int, move: int = 1) -> float:
    """Layer-3 gap on a first visit, key t against an earlier visit j of c(t), after a move of ``move`` = ±1 (the
    head goes to c(t + 1) = c(t) + move): |⟨q_t, k_j⟩| − |⟨q_t, k_t⟩| of :func:`layer3_products`,
    1/((t+1)(j+1)) − 1/(t+1)² + move·(1/(j+1)² − 1/(t+1)²)/(3(t+1)²) ≈ 2/t³ for j = t − 2 (the last term, of order
    1/t⁵, flips its sign with the move)."""
    if move not in (1, -1):
        raise ValueError(f"move must be +1 or -1, got {move!r}")
    a, j = t + 1, competitor + 1
    return 1 / (a * j) - 1 / a**2 + move * (1 / j**2 - 1 / a**2) / (3 * a**2)


# ---------------------------------------------------------------------------------------------------
# (c) random features
# ---------------------------------------------------------------------------------------------------


def random_feature_success(
    machine: TuringMachine,
    word: Sequence[int],
    steps: int,
    b: int,
    beta: float,
    num_features: int,
    seeds: Sequence[int],
    estimator: str = "positive/orthogonal",
    layers: Sequence[int] = (1,),
) -> list[bool]:
    """(c) for each seed: is the bit construction's trace exact with the selection of ``layers`` done by
    linear attention with one draw of ``estimator`` (m = ``num_features``) for exp(β qᵀk), i.e. SM on inputs
    scaled by √β? The other selection stays hardmax."""
    from ..estimators import get

    ref = machine.run(word, steps)
    out = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        sel = {}
        for i in layers:
            dim = b if i == 1 else 2 * b
            fm = get(estimator, dim=dim, num_features=num_features).draw(gen)
            sel[i] = LinearSelection(fm, scale=math.sqrt(beta))
        try:
            ok = BitTransformer(machine, b, selections=sel).first_error(word, ref) is None
        except ValueError:  # a vanishing or non-finite denominator: not exact
            ok = False
        out.append(ok)
    return out


# ---------------------------------------------------------------------------------------------------
# The rank obstruction (proofs/rank_bound.md)
# ---------------------------------------------------------------------------------------------------


def permutation_distance_bound(n: int, rank: int) -> float:
    """‖A − P‖_F ≥ √(n − D) for any A of rank ≤ D and any n×n permutation P (Eckart–Young)."""
    return math.sqrt(max(n - rank, 0))


def best_rank_error(target: torch.Tensor, rank: int) -> float:
    """min_{rank B ≤ D} ‖B − target‖_F = (Σ_{i>D} σ_i²)^{1/2} (Eckart–Young), from the SVD."""
    sv = torch.linalg.svdvals(target)
    return float(torch.sqrt((sv[rank:] ** 2).sum()))


def target_mass(a: torch.Tensor, perm: Sequence[int]) -> float:
    """Σ_i a_{i, π(i)}: the attention mass a matrix puts on the keys a permutation selects; ≤ rank(a)
    for row-stochastic a ≥ 0 (proofs/rank_bound.md)."""
    idx = torch.as_tensor(list(perm))
    return float(a[torch.arange(a.shape[-2]), idx].sum())
