"""The p-values the checks share and what the sequential looks read from them (proofs/verification.md, items 1–3 and 8):
skewness-corrected normal p-values (:func:`normal_p_values`, the Cramér factor applied only where log p provably
falls), exact p-values of bounded estimates (:func:`bounded_p_values`, Hoeffding and empirical Bernstein), the
smallest |z| that reaches a level (:func:`critical_z`) and the rule that lets an early look accept
(:func:`excludes_detectable_effects`). The variance check's own bounds (Chebyshev for a claim of 0, Maurer–Pontil for
bounded estimates) stay in :func:`~kerneltheory.testing.checks.variance_check`.
"""

from __future__ import annotations

import math

import torch
from scipy import special

_EPS = torch.finfo(torch.float64).eps


def _cramer_rate(skewness: torch.Tensor | None, n: int, studentised: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(k, z_t): the skewness factor is exp(k·|z|³), k = |γ|/(c'√n) with c' = 6 (3 studentised), and log p
    falls with |z| up to z_t = 1/(3k) at least (+inf when γ = 0)."""
    g = torch.zeros((), dtype=torch.float64)
    if skewness is not None:
        g = skewness.to(torch.float64).cpu().nan_to_num(0.0).abs()
    k = g / ((3 if studentised else 6) * math.sqrt(max(n, 1)))
    turn = torch.where(k > 0, 1.0 / (3.0 * torch.where(k > 0, k, torch.ones_like(k))), torch.full_like(k, math.inf))
    return k, turn


def p_value_floor(skewness: torch.Tensor | None, n: int, *, studentised: bool = False) -> torch.Tensor:
    """The smallest p-value :func:`normal_p_values` can give at each pair (its value at z_t; 0 without skewness).
    A pair whose floor, Bonferroni-adjusted, exceeds the level can never be rejected by the normal test."""
    _, turn = _cramer_rate(skewness, n, studentised)
    return normal_p_values(turn.clamp(max=1e300), skewness, n, studentised=studentised)


def normal_p_values(
    z: torch.Tensor, skewness: torch.Tensor | None = None, n: int = 1, *, studentised: bool = False
) -> torch.Tensor:
    r"""Two-sided normal p-values 2Φ̄(|z|), times the Cramér factor exp(c·|z|³|γ|/√n) when the skewness γ of
    one draw is given (clipped to 1); c = 1/6 for a known variance, 1/3 for a studentised statistic.

    Cramér (1938): P(Z_n > x) = Φ̄(x) exp(x³ λ(x/√n)/√n)(1 + O((1 + x)/√n)) with λ(0) = γ/6. A studentised
    statistic has the opposite and larger skewness term (its Edgeworth polynomial is γ(2x² + 1)/6 against
    γ(x² − 1)/6 for the standardised mean; Hall 1992, §2.6), hence c = 1/3 there. Using |γ| makes the correction
    conservative in both tails; it is 1 for symmetric estimates.

    The one-term factor grows like exp(k|z|³) and would eventually outgrow Φ̄, making the p-value *rise* with |z|
    (a huge deviation would pass). A tail probability cannot rise with |z|, so the factor is applied at
    min(|z|, z_t), z_t = 1/(3k), below which log p provably falls (d/dz log Φ̄(z) < −z): beyond z_t the p-value
    keeps its value at z_t. An infinite |z| (a deterministic pair off its target) gives 0.
    """
    za = z.abs().to(torch.float64).cpu()
    k, turn = _cramer_rate(skewness, n, studentised)
    log_p = _log_p(torch.minimum(za, turn), k)
    return torch.where(za.isinf(), torch.zeros_like(za), torch.exp(log_p.clamp(max=0.0)))


def _log_p(z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """log(2Φ̄(z)·e^{kz³}) for z ≥ 0, from torch's float64 log Φ̄ (accurate far into the tail); the skewness term
    is 0 where k = 0 (0·∞ would be NaN)."""
    return math.log(2.0) + torch.special.log_ndtr(-z) + torch.where(k > 0, k * z**3, torch.zeros_like(z))


def bounded_p_values(
    diff: torch.Tensor, bound: torch.Tensor, sample_var: torch.Tensor, n: int
) -> torch.Tensor:
    r"""Exact two-sided p-values for a mean of n iid estimates in [−B, B], deviating by ``diff`` from H₀.

    Two finite-sample bounds, combined by Bonferroni (p = 2·min(p_H, p_EB), clipped to 1):

    * Hoeffding (1963): P(|x̄ − μ| ≥ t) ≤ 2 exp(−n t² / (2B²)) (range 2B);
    * empirical Bernstein (Maurer & Pontil 2009, Theorem 4, two-sided): with probability ≥ 1 − δ,
      |x̄ − μ| ≤ √(2 V_n L / n) + 7·(2B)·L / (3(n − 1)), L = ln(4/δ), V_n the sample variance. Given t, the
      smallest such δ solves t = a√L + cL (a = √(2V_n/n), c = 14B/(3(n−1))): √L = (√(a² + 4ct) − a)/(2c).

    The second is far more powerful when the estimates vary little compared with their range (trig features).
    A pair with B = 0 must hit its target exactly (p = 1 or 0).
    """
    b = bound.to(torch.float64)
    t = diff.abs().to(torch.float64)
    safe_b = torch.where(b > 0, b, torch.ones_like(b))
    p_h = (2 * torch.exp(-n * (t / safe_b) ** 2 / 2)).clamp(max=1.0)
    a, c = _bernstein_terms(safe_b, sample_var, n)
    root_l = (torch.sqrt(a**2 + 4 * c * t) - a) / (2 * c)
    p_eb = (4 * torch.exp(-(root_l**2))).clamp(max=1.0)
    p = (2 * torch.minimum(p_h, p_eb)).clamp(max=1.0)
    return torch.where(b > 0, p, (t == 0).to(torch.float64))


def _bernstein_terms(bound: torch.Tensor, sample_var: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """a = √(2V/n) and c = 14B/(3(n − 1)) of the empirical Bernstein bound (:func:`bounded_p_values`)."""
    return torch.sqrt(2 * sample_var.clamp_min(0.0).to(torch.float64) / n), 14 * bound / (3 * max(n - 1, 1))


def bounded_reach(bound: torch.Tensor, target: torch.Tensor, sample_var: torch.Tensor, n: int,
                  level: float) -> torch.Tensor:
    """Per pair, the smallest deviation t at which :func:`bounded_p_values` falls to ``level`` < 1, its inverse in
    closed form: p = 2·min(p_H, p_EB) ≤ level exactly where p_H ≤ L or p_EB ≤ L, L = level/2, that is
    t ≥ B·√(2 ln(2/L)/n) (Hoeffding) or t ≥ c·r² + a·r with r = √ln(4/L) (Bernstein: (√(a² + 4ct) − a)/(2c) ≥ r);
    +inf where the smaller exceeds B + |K| (no deviation the bound allows reaches the level), 0 where B + |K| = 0
    (nothing can deviate) or B = 0 (any deviation is rejected)."""
    b = bound.to(torch.float64)
    room = b + target.abs().to(torch.float64)
    half = level / 2
    a, c = _bernstein_terms(b, sample_var, n)
    r = math.sqrt(math.log(4 / half))
    reach = torch.minimum(b * math.sqrt(2 * math.log(2 / half) / n), c * r * r + a * r)
    return torch.where((room == 0) | (b == 0), 0.0, torch.where(reach <= room, reach, math.inf))


def detectable_effect(se: torch.Tensor, level: float, z_power: float, skewness: torch.Tensor | None = None,
                      n: int = 1, *, studentised: bool = False) -> torch.Tensor:
    """δ = (z* + z_β)·SE: the deviation a two-sided normal test at per-pair ``level`` detects with power
    Φ(z_β) (``z_power`` = z_β), z* its :func:`critical_z` (+inf where no |z| reaches the level). Accepting early
    (:func:`excludes_detectable_effects`) and a pass's resolution (:func:`~kerneltheory.testing.checks.mean_check`,
    the 1/m check) read it."""
    return (critical_z(level, skewness, n, studentised=studentised) + z_power) * se


def critical_z(level: float, skewness: torch.Tensor | None, n: int, *, studentised: bool = False) -> torch.Tensor:
    r"""Per pair, the smallest |z| at which :func:`normal_p_values` (with this skewness and n) is ≤ ``level``;
    +inf where no |z| reaches it (the p-value stops falling at z_t, see :func:`normal_p_values`; the search
    also stops at 40).

    log p falls strictly on [0, z_t], so the root of f(z) = log p(z) − log level is bracketed by z₀ = Φ̄⁻¹(level/2)
    (the root without skewness, where f ≥ 0) and min(z_t, 40). Newton steps from z₀ that leave the bracket are
    replaced by bisection. A pair stops, on its own (its result does not depend on the other pairs), once its step or
    its bracket is a few ulps, its step lands on a bracket end it has evaluated (two points between which Newton would
    cycle), or |f| is within the rounding of f itself (near level 1, log 2 + log Φ̄(z) cancels, and f moves in steps of
    hundreds of ulps of z). The result is the bracket's upper end, where f ≤ 0; where the bracket is still wide, the
    first point with f ≤ 0 on the ladder lo·(1 + 2ʲε), j = −1 … 52, from its lower end lo, if smaller (within twice
    lo's distance from the root): always a z with f(z) ≤ 0."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if skewness is None:  # no skewness factor: the root is z₀, p(z₀) = 2Φ̄(z₀) = level, up a few ulps where rounding
        z = -float(special.ndtri_exp(math.log(level) - math.log(2.0)))  # leaves p(z₀) just above the level
        zero = torch.zeros((), dtype=torch.float64)
        while float(_log_p(torch.tensor(z, dtype=torch.float64), zero)) > math.log(level):
            z = math.nextafter(z, math.inf)
        return torch.tensor(z, dtype=torch.float64)
    k, turn = _cramer_rate(skewness, n, studentised)
    k, turn = torch.broadcast_tensors(k, turn)
    shape = turn.shape
    k, top = k.reshape(-1), turn.reshape(-1).clamp(max=40.0)
    target = math.log(level)
    z0 = -float(special.ndtri_exp(target - math.log(2.0)))
    reach = _log_p(top, k) <= target  # elsewhere no root: nothing to search
    lo = torch.where(reach, torch.minimum(torch.full_like(top, z0), top), top)
    hi = top.clone()
    z = lo.clone()
    done = ~reach
    log_root_2pi = 0.5 * math.log(2 * math.pi)
    for _ in range(200):  # a handful of Newton steps from z₀; bisection bounds the rest (≤ 60 halvings per pair)
        if bool(done.all()):
            break
        log_tail = torch.special.log_ndtr(-z)
        skew = k * z**3
        f = math.log(2.0) + log_tail + skew - target
        hi = torch.where(~done & (f <= 0), torch.minimum(hi, z), hi)
        lo = torch.where(~done & (f > 0), torch.maximum(lo, z), lo)
        slope = -torch.exp(-z * z / 2 - log_root_2pi - log_tail) + 3 * k * z * z
        step = z - f / slope
        inside = torch.isfinite(step) & (step >= lo) & (step <= hi)
        new = torch.where(inside, step, (lo + hi) / 2)
        noise = 4 * _EPS * (math.log(2.0) + log_tail.abs() + skew.abs() + abs(target))
        settled = ((new - z).abs() <= 4 * _EPS * z) | (hi - lo <= 4 * _EPS * hi) | (new == lo) | (new == hi) | (
            f.abs() <= noise)
        z = torch.where(done, z, new)
        done = done | settled
    found = hi.clone()
    wide = (reach & (hi - lo > 4 * _EPS * hi)).nonzero().flatten()
    if wide.numel():
        base = lo[wide]
        ladder = base.unsqueeze(-1) * (1 + _EPS * 2.0 ** torch.arange(-1, 53, dtype=torch.float64))
        ladder[:, 0] = base  # lo itself first (it is the root where f(lo) = 0)
        ok = _log_p(ladder, k[wide].unsqueeze(-1)) <= target
        first = ladder.gather(-1, ok.to(torch.int8).argmax(-1, keepdim=True)).squeeze(-1)
        found[wide] = torch.where(ok.any(-1), torch.minimum(first, hi[wide]), hi[wide])
    return torch.where(reach, found, torch.full_like(top, math.inf)).reshape(shape)


def excludes_detectable_effects(
    diff: torch.Tensor,
    se: torch.Tensor,
    final_se: torch.Tensor,
    skewness: torch.Tensor | None,
    futility,
    *,
    pairs: int,
    halves: int = 1,
    studentised: bool,
    settled: torch.Tensor | None = None,
) -> bool:
    r"""Whether an early look may accept (:mod:`~kerneltheory.testing.sequential`, accepting early): at every
    pair, |diff| + c·SE ≤ δ* = (z* + z_β)·SE_N, with z* the :func:`critical_z` of the last look's per-pair level
    ``futility.final_alpha``/(``pairs``·``halves``) (``halves`` = 2 where the normal test is Bonferroni-combined
    with an exact bound), ``se`` the standard error now and ``final_se`` after ``futility.final_draws`` draws.
    ``settled``: pairs compared with their rounding floor instead (draws equal up to rounding); the caller has
    found them within it, so they hold."""
    if pairs < 1 or halves < 1:
        raise ValueError(f"pairs and halves must be ≥ 1, got {pairs} and {halves}")
    level = futility.final_alpha / (pairs * halves)
    if not 0.0 < level < 1.0:
        return False
    delta = detectable_effect(final_se, level, futility.z_power, skewness, futility.final_draws,
                              studentised=studentised)
    # an infinite δ* (a pair the last look could never reject) protects nothing: it never licenses accepting
    ok = torch.isfinite(delta) & (diff.abs() + futility.margin * se <= delta)
    if settled is not None:
        ok = ok | settled
    return bool(ok.all())
