r"""The precision a frequency draw carries, and the rounding floors and tie probabilities that follow from it
(proofs/sampler_independence.md, items 4 and 6).

A sampler's dtype does not say how precisely its values were computed: a float32 ORF returned as ``.double()`` is
float64 holding float32 numbers, and a module cast to bfloat16 computed its block in float32 (torch's QR has no
half-precision kernel) before rounding each entry to bfloat16. For draws of a continuous law, every entry of an
[m, d] draw being exactly representable in a coarser format t has probability 0 unless the values were computed in
(or rounded to) t, so the *carried* format of a draw is the coarsest of bfloat16, float16, float32, float64 that
holds all its entries exactly; the floors below take their ε from it.

* **Orthogonality floor** of a block of b rows (:func:`orthogonality_floors`): 64·ε_t·b for t = float32, float64
  (a Householder QR in t, Higham §19.3); for t = float16 or bfloat16, the float32 bound c₀ = 64·ε₃₂·b plus the
  rounding of every entry to t: (c₀ + 2a + a²)/(1 − a)², a = u_t + √d·η_t(1 + u_t)/(ρ − √d·η_t), u_t = ε_t/2 the
  unit roundoff, η_t half the smallest subnormal, ρ the smallest norm of a compared vector. A draw whose floor is
  ≥ 1 (|cos| ≤ 1 always) or that has a zero vector is not tested.
* **Tie probability** of the redraw check (:func:`tie_bound`): a correct sampler's row norm R̃ is within νR + κ
  of an exact draw R ~ std·χ_d (ν_t = 32·ε_t in float32/64, 32·ε₃₂ + u_t in float16/bfloat16; κ = √d·η_t); two
  draws tie when |R̃' − R̃| ≤ δ·R̃ + c, δ = 2ν/(1 − ν), c = (2 + δ)κ (what a norm kept between redraws can move);
  then P(tie) ≤ 2 f*(δ'·E χ_d + c'/std), f* = sup f_{χ_d}, δ' = (δ(1 + ν) + 2ν)/(1 − ν), c' = (c + (δ + 2)κ)/(1 − ν).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from scipy import stats

from .checks import CheckResult, _bonferroni, property_check

__all__ = ["FORMATS", "carried_format", "non_finite_rows", "orthogonality_floors", "orthogonality_row", "redraw_row",
           "scale_floors", "tie_bound", "tie_tolerance"]

FORMATS = (torch.bfloat16, torch.float16, torch.float32, torch.float64)  # coarsest first
_F64 = torch.float64
_EPS32 = torch.finfo(torch.float32).eps


def carried_format(w: torch.Tensor) -> torch.Tensor:
    """[r] index into :data:`FORMATS` of the coarsest format holding every entry of each draw of ``w`` [r, ...]
    (float64 values) exactly; a non-finite entry is held by none but float64."""
    w = w.to(_F64).flatten(1)
    out = torch.full((w.shape[0],), len(FORMATS) - 1, dtype=torch.long)
    for k in range(len(FORMATS) - 2, -1, -1):  # float32, float16, bfloat16: the coarsest that holds wins
        held = (w.to(FORMATS[k]).to(_F64) == w).all(1)
        out = torch.where(held, k, out)
    return out


def _name(fmt: torch.dtype) -> str:
    return str(fmt).removeprefix("torch.")


def _unit(fmt: torch.dtype) -> tuple[float, float]:
    """(u, η): unit roundoff ε/2 and half the smallest subnormal of ``fmt``."""
    info = torch.finfo(fmt)
    return info.eps / 2, info.smallest_normal * info.eps / 2


def coarsest_unit_roundoff(fmt: torch.Tensor) -> float:
    """u = ε/2 of the coarsest format any draw carries (``fmt``: [r] indices into :data:`FORMATS`, coarsest first)."""
    return _unit(FORMATS[int(fmt.min())])[0]


def orthogonality_floors(fmt: torch.Tensor, rho: torch.Tensor, block: int, d: int) -> torch.Tensor:
    """[r] floor on the worst |cos| between distinct vectors of a block for draws in formats ``fmt`` [r] whose
    smallest compared vector has norm ``rho`` [r]; ``inf`` where the draw cannot be tested (a zero vector, or a
    floor ≥ 1)."""
    floors = torch.empty(fmt.shape, dtype=_F64)
    for k, t in enumerate(FORMATS):
        at = fmt == k
        if not bool(at.any()):
            continue
        u, eta = _unit(t)
        slack = math.sqrt(d) * eta  # subnormal absolute error of a vector, in every format
        r = rho[at]
        # computed in t (float32/64): 64·ε_t·b, and no rounding step after; computed in float32 and rounded to t: one
        wide = t in (torch.float32, torch.float64)
        c0, step = (64 * torch.finfo(t).eps * block, 0.0) if wide else (64 * _EPS32 * block, u)
        a = torch.where(r > slack, step + slack * (1 + u) / (r - slack).clamp_min(torch.finfo(_F64).tiny), math.inf)
        floors[at] = torch.where(a < 1, (c0 + 2 * a + a * a) / (1 - a).clamp_min(1e-300) ** 2, math.inf)
    return torch.where((rho > 0) & (floors < 1), floors, math.inf)


def _nu(fmt: torch.dtype) -> float:
    """Relative distance of a correct sampler's computed row norm from an exact draw: 32·ε_t in float32/64 (half
    the orthogonality budget); 32·ε₃₂ + u_t when computed in float32 and rounded to float16/bfloat16."""
    if fmt in (torch.float32, torch.float64):
        return 32 * torch.finfo(fmt).eps
    return 32 * _EPS32 + _unit(fmt)[0]


def tie_tolerance(fmt: torch.dtype, d: int) -> tuple[float, float]:
    """(δ, c): two row norms R̃, R̃' tie when |R̃' − R̃| ≤ δ·R̃ + c (a norm kept between redraws and recomputed
    in ``fmt`` moves by no more)."""
    nu = _nu(fmt)
    delta = 2 * nu / (1 - nu)
    return delta, (2 + delta) * math.sqrt(d) * _unit(fmt)[1]


def scale_floors(z: torch.Tensor, fmt: torch.Tensor, scale: float) -> torch.Tensor:
    """[r] bounds F_r on |ã_r − a_r|, where ã_r = (1/m) Σ_i ‖z̃_i‖² is the scale check's value of a draw's rows
    standardised entrywise, ``z`` = ``scale``·w [r, m, d] as computed (an isotropic law of mean 0, ``scale`` = 1/std),
    and a_r that of the exact draw (proofs/sampler_independence.md, item 12): the rounding model of
    :func:`tie_bound`'s norms taken for the vector, ‖w̃_i − w_i‖ ≤ ν‖w_i‖ + κ in the format ``fmt`` [r] (indices into
    :data:`FORMATS`) each draw carries, gives ‖z̃_i − z_i‖ ≤ ε_i = (ν‖z̃_i‖ + κ·scale)/(1 − ν), and
    |‖z̃_i‖² − ‖z_i‖²| ≤ 2‖z̃_i‖ε_i + ε_i². Read from z, not w: ‖w‖ overflowed float64's squares past 1.3·10¹⁵⁴ (a
    review: an infinite floor passed a sampler 1 % too wide at std 10¹⁶⁰). A sampler whose rows all have norm √d from
    a float32 QR has ã_r = d(1 + O(ε₃₂)) with a spread of the same size, and its scale row failed on that rounding
    alone."""
    d = z.shape[-1]
    nu = torch.tensor([_nu(f) for f in FORMATS], dtype=_F64)[fmt][:, None]
    kappa = torch.tensor([math.sqrt(d) * _unit(f)[1] for f in FORMATS], dtype=_F64)[fmt][:, None]
    zn = torch.linalg.vector_norm(z.to(_F64), dim=-1)
    eps = (nu * zn + kappa * scale) / (1 - nu)
    return (eps * (2 * zn + eps)).mean(-1)


def tie_bound(fmt: torch.dtype, d: int, std: float) -> float:
    """Upper bound on P(tie) for the norms of one row in two independent draws of N(0, std²I_d) rows computed in
    ``fmt`` (module docstring; proofs/sampler_independence.md, item 6)."""
    nu = _nu(fmt)
    delta, c = tie_tolerance(fmt, d)
    kappa = math.sqrt(d) * _unit(fmt)[1]
    delta2 = (delta * (1 + nu) + 2 * nu) / (1 - nu)
    c2 = (c + (delta + 2) * kappa) / (1 - nu)
    chi = stats.chi(d)
    f_star = float(chi.pdf(math.sqrt(d - 1)))  # the mode of χ_d is √(d − 1)
    return min(1.0, 2 * f_star * (delta2 * float(chi.mean()) + c2 / std))


def non_finite_rows(names: list[str], w: torch.Tensor, offset: int, alpha: float, seed: int,
                    n: int) -> list[CheckResult]:
    """Every check fails on a draw with a non-finite entry (an N(μ, Σ) row is finite with probability 1): the rows
    name the first such draw (``offset`` the index of ``w``'s first draw) and row."""
    bad = ~torch.isfinite(w)
    k = int(bad.flatten(1).any(1).nonzero()[0])
    i = int(bad[k].any(-1).nonzero()[0])
    value = float(w[k, i][bad[k, i]][0])
    detail = (f"draw {offset + k} (seed={seed}) has {value} in row {i}: rows of the claimed law are finite, so every "
              "claim is refuted")
    return [CheckResult.certain_failure("non-finite draw", detail, name=nm, claim="sampler", alpha=alpha, sample_size=n,
                                        seed=seed)
            for nm in names]


def orthogonality_row(name: str, kind: str, block: int, errs: torch.Tensor, rho: torch.Tensor, fmt: torch.Tensor,
                      d: int, alpha: float, seed: int) -> CheckResult:
    """Exhaustive: every tested draw's worst |cos| (``errs`` [n]) is within its floor (:func:`orthogonality_floors`
    from its carried format ``fmt`` and smallest compared norm ``rho``). Untested draws (floor ≥ 1, zero vector)
    never pass: with no violation elsewhere the row is refused."""
    n = errs.shape[0]
    floors = orthogonality_floors(fmt, rho, block, d)
    tested = torch.isfinite(floors)
    if not bool(tested.any()) or (not bool(tested.all()) and not bool((errs > floors).any())):
        k = int((~tested).nonzero()[0])
        t = _name(FORMATS[int(fmt[k])])
        why = "a zero vector" if float(rho[k]) == 0 else f"{t} values: a floor ≥ 1 tests nothing"
        return CheckResult.refusal(f"{int((~tested).sum())} of {n} draws cannot be tested (draw {k}: {why})",
                                   name=name, claim="sampler", alpha=alpha, sample_size=n, seed=seed)
    bad = errs > floors
    k = int(torch.argmax(torch.where(tested, errs / floors, -math.inf)))
    worst, t = float(errs[k]), _name(FORMATS[int(fmt[k])])
    row = property_check(int(bad.sum()), n, claim="sampler", name=name, seed=seed, alpha=alpha,
                         example=f"{kind}: worst |cos| {worst:.3g} in draw {k}, which carries {t} values (floor "
                                 f"{float(floors[k]):.3g}, blocks of {block})")
    return dataclasses.replace(row, statistic=worst, effect_size=float(errs.max()), sample_size=n)


def redraw_row(name: str, norms: torch.Tensor, fmt: torch.Tensor, gaussian_rows: bool, d: int, std: float,
               alpha: float, seed: int) -> CheckResult:
    """Every row norm changes between independent redraws: over the K = ⌊n/2⌋ disjoint pairs of draws (2k, 2k + 1)
    the number T_i of ties of row i (:func:`tie_tolerance`, in the coarsest format any draw carries) is at most
    Bin(K, p) with p = :func:`tie_bound` under the claim; exact binomial tail, Bonferroni over the m rows. Refused
    when the norms' law is not claimed, or when even K ties in a row could not reject at ``alpha``."""
    n, m = norms.shape
    if not gaussian_rows:
        return CheckResult.refusal("the claims give the norms no law (no Gaussian rows): the chance that a correct "
                                   "sampler repeats a norm is not bounded", name=name, claim="sampler", alpha=alpha,
                                   sample_size=n, seed=seed)
    t = FORMATS[int(fmt.min())]
    delta, c = tie_tolerance(t, d)
    p = tie_bound(t, d, std)
    k = n // 2
    if p >= 1 or m * math.exp(k * math.log(p)) > alpha:
        return CheckResult.refusal(f"{_name(t)} norms tie with probability up to {p:.3g}: even {k} ties in {k} "
                                   f"pairs of redraws could not reject at α = {alpha:.3g}", name=name, claim="sampler",
                                   alpha=alpha, sample_size=n, seed=seed)
    prev, nxt = norms[0 : 2 * k : 2], norms[1 : 2 * k : 2]
    ties = ((nxt - prev).abs() <= delta * prev.abs() + c).sum(0).numpy()
    pv = stats.binom.sf(ties - 1, k, p)
    p_adj, i = _bonferroni(torch.from_numpy(np.asarray(pv, dtype=np.float64)))  # binomial tails: never NaN
    detail = (f"worst: row {i}: {int(ties[i])} of {k} pairs of redraws keep its norm (|Δ‖ω‖| ≤ {delta:.3g}·‖ω‖ + "
              f"{c:.3g}; a correct {_name(t)} sampler ties with probability ≤ {p:.3g}), p = {float(pv[i]):.3g}")
    return CheckResult(name=name, claim="sampler", statistic=float(ties[i]), p_value=p_adj, alpha=alpha,
                       effect_size=float(ties.max()) / k, sample_size=n, seed=seed,
                       method=f"binomial tie count ×{m} (bonferroni)", passed=p_adj > alpha, detail=detail)
