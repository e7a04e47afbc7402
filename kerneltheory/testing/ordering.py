r"""Ordering claims between estimators ("A has lower variance than B") and the 1/m law of the variance.

**Ordering** (:func:`variance_ordering_check`). The claim is H₀: Var_A,p ≤ Var_B,p for every pair p (or, with
``aggregate="mean"``, for the mean over the pairs of a sequence). It is rejected when A's sample variance
significantly *exceeds* B's. A and B are drawn independently (two child seeds of ``seed``) and compared on the
log scale, where the sampling distribution of s² is nearly symmetric and its spread depends on the kurtosis κ
only:

    z_p = (ℓ_A,p − ℓ_B,p) / √(v_A,p + v_B,p),   ℓ = log s² + v/2,   v = V/s⁴,
    V = (μ̂₄ − s⁴(n − 3)/(n − 1))/n ≈ Var(s²)   (so v ≈ (κ − 1)/n, the delta method),

one-sided, p_p = Φ̄(z_p)·exp(c|z_p|³|γ_p|/√n) (z_p > 0; 1 otherwise), Bonferroni over the pairs (P · min p_p); v/2
removes the first-order bias of log s². The factor is the Cramér skewness correction of
:func:`~kerneltheory.testing.pvalues.normal_p_values` (studentised, c = 1/3), with γ_p the skewness of one draw of
the difference: log s² is a mean of the squared deviations Y = (X − X̄)², whose per-draw spread on the log scale is
w = sd(Y)/mean(Y) and whose skewness is γ_Y, and for independent sides γ_p = (γ_A w_A³ − γ_B w_B³)/(w_A² +
w_B²)^{3/2} (third cumulants add; proofs/verification.md, item 10(b)): large when the two sides' tails differ, near 0
when they are alike. Where that skewness keeps every z from reaching the level (the
smallest p-value :func:`~kerneltheory.testing.pvalues.p_value_floor`, times P, above α) and no pair rejects, the row
is refused, as in the variance check. The normal approximation is used only where the fourth-moment guard of
:func:`~kerneltheory.testing.checks.clt_guard` holds for both samples (as in ``checks.variance_check``);
otherwise the check refuses. With ``aggregate="mean"`` the statistic is log Σ_p s²_A,p − log Σ_p s²_B,p, with
V from the per-draw sums U_r = Σ_p (X_rp − X̄_p)² (Σ_p s²_p = Σ_r U_r/(n − 1); the pairs of one draw are
dependent), and the guard is applied to U as well: U has the tails of X², so for positive features this asks
for the eighth moment and admits only small norms at a quick budget. Pairs with zero variance on both sides
(z = 0 for positive features, τ = 0 for trig) carry no ordering and get p = 1. The effect size is
max_p (s²_A,p / s²_B,p − 1): negative when A is better everywhere. An estimator's estimates (its
``sample_estimates``, or a callable ``estimates(generator, r)``) must come from the generator they are given: an
estimator that ignores it (repeating its draws in every block) or bypasses it (no replay from the seed) is a
ValueError naming the argument (:func:`~kerneltheory.testing.replay.estimates_follow_their_generator`), here, in
:func:`one_over_m_check` and in the small-weight check.

**Zero variance.** A pair's variance counts as 0 when its s² is at most what rounding alone gives its own
estimates, (2·ROUNDING_ULPS·ε·max_r |X_rp|)²·n/(n − 1) (estimates within F of one exact value have s² ≤ F²n/(n − 1));
a floor for the whole batch, scaled by its largest variance, once failed a pair whose two estimators are exact
(hyperbolic and positive features at z = 0: rounding noise of 10⁻³² on estimates of size 1) and passed a 64-fold
reversal at a pair whose variances were 10¹⁴ times smaller than another pair's. A pair whose estimates are exactly 0
in every draw of both estimators (exponentials that underflow where the kernel overflows) orders nothing; the row
is refused unless another pair fails. The floor is read from the estimates, not from the terms summed into them: a
deterministic estimate that cancels terms much larger than itself may exceed it. A pair whose s² is below float64's
smallest normal number although its estimates vary beyond rounding (estimates of size 10⁻¹⁶² or less: s² underflowed
to 0, and "0 against 0" passed a reversed ordering) refuses the row unless another pair fails (:func:`_underflowed`).
A row at which *every* pair is 0 on both sides (estimators exact there, e.g. positive features at x = y = 0; closed
forms that are 0, or underflowed, everywhere) compares nothing and is refused, where it used to pass.

**Heavy tails at small m (measured; improved, not solved).** The guard and the skewness are read from the *sample*,
and a lognormal-like sample that misses its rare large values has a low s², a low fourth moment and a low skewness
at once: such runs pass the guard and look precise. Gaussian noise against positive features at m = 1 (d = 8,
‖x + y‖ = 1, equal variances, "noise ≤ positive", seeds 0–999): at 20 000 draws 98, 36, 10 and 1 rejections at
α′ = 0.05, 10⁻², 10⁻³, 10⁻⁴ with the plain normal tail, 79, 18, 1 and 0 with the skewness factor (234 refused); at
2000 draws 51, 39, 25 and 18 before (94 % refused by the guard, the rest the runs that missed the tail), 46, 26, 4
and 0 now; at m = 4 (20 000 draws) 82, 22, 4, 0 before and 69, 13, 1, 0 now (109 refused). The 1/m check of
positive/gaussian at d = 8, ‖z‖ = 1, 20 000 draws, ms = (1, 4, 16, 64): 25, 7, 3 of 400 seeds at α′ = 0.05, 10⁻²,
10⁻³ before, 23, 5, 1 now. The tail (α′ ≤ 10⁻³) now holds at 20 000 draws; at moderate α′ and at a few thousand
draws the rate still exceeds the declared one (tests/test_ordering_checks.py, slow tier). Start ms at 4 or more for
exponential features, and compare estimators of similar tails. An independent pilot sample per side (n more draws)
for the guard and the studentiser was measured and not adopted (m = 4, ‖x + y‖ = 1, rejections at α′ = 0.05, 10⁻²,
10⁻³, 10⁻⁴; ``OMP_NUM_THREADS=1 python experiments/ordering_pilot.py experiments/ordering_pilot.json``): the pilot's
v and guard in place of the sample's took "noise ≤ positive" at 2000 draws from 68, 17, 5, 4 of 1000 seeds to 40, 8,
0, 0, but the reversed claim "positive ≤ noise" from 5, 0, 0, 0 to 47, 12, 4, 1 (and at 20 000 draws from 14, 0, 0,
0 to 42, 16, 6, 3 of 500: a sample that catches a rare large draw keeps its large s² while the pilot's v stays
small); the larger of the two v (and of the two skewness terms) under both guards held both directions (34, 4, 0, 0
and 4, 0, 0, 0) but rejected a variance ratio of 2 in 18 of 300 runs at 10⁻³ against 86.

A check of this kind cannot *confirm* an ordering, only fail to refute it; the meta-tests therefore also plant
reversals and assert that they are rejected, and :func:`closed_form_ordering_check` verifies the ordering
exactly where the variances have closed forms (kerneltheory.theory).

**The 1/m law** (:func:`one_over_m_check`). For m in ``ms`` (independent draws per m), the slope β of log s²_p
against log m is fitted per pair by weighted least squares with the delta-method variances
Var(log s²) ≈ Var(s²)/s⁴ (log s² is corrected for its first-order bias −Var(s²)/(2s⁴)); H₀: β = −1,
z = (β̂ + 1)/SE(β̂), two-sided with the same skewness factor (β̂ = Σ_m c_m log s²_m is a combination of
independent log-variances, item 10(b)) and the same refusal, Bonferroni over the pairs; the effect is max_p
|β̂_p + 1|. For iid frequencies
Var = v₁/m exactly, so β = −1. Orthogonal blocks are different: with ρ the covariance of two rows of one block,
Var = (v₁ − ρ)/m + ρ for m ≤ d, and (v₁ + (d − 1)ρ)/m when m is a multiple of d — exactly 1/m across whole
blocks, faster than 1/m (ρ < 0) below one block.

**Domains.** Every check refuses (a refused row, never a pass) when what it orders is outside the domain where
the comparison means anything: closed forms (or sample moments) that are not finite, variances below −(rounding
floor) (a negative "variance" is a formula used outside its validity, e.g. a leading term at m > d), magnitudes
above √(float64 max) ≈ 1.3e154 (beyond it the squares in the standard errors and the relative effect overflow),
and closed forms whose formula rejects its parameters (ValueError, e.g. OPRF's A* for φ̄ < 0):
:func:`domain_refusal`, :meth:`OrderingClaim.check`.

:func:`ordering_claims` lists the orderings claimed in the literature, each with the estimators to compare and,
where one exists, the closed form to verify exactly.

Example:
    >>> import torch
    >>> import kerneltheory.estimators as E
    >>> x, y = 0.3 * torch.eye(4, dtype=torch.float64), torch.full((4, 4), 0.2, dtype=torch.float64)
    >>> hyp, pos = E.get("hyperbolic/gaussian", 4, 16), E.get("positive/gaussian", 4, 16)
    >>> row = variance_ordering_check(hyp, pos, x, y, draws=2000, seed=0)
    >>> row.passed, row.effect_size < 0
    (True, True)
    >>> variance_ordering_check(pos, hyp, x, y, draws=2000, seed=0).passed  # the reversed claim is refuted
    False
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from .. import estimators as E
from .. import theory
from .._validation import check_alpha, check_int, check_points
from ..montecarlo import Moments, moments
from .checks import (
    CheckResult,
    _bonferroni,
    _not_a_probability,
    _skewness,
    binade_exponents,
    clt_guard,
    pair_rounding_floor,
    property_check,
    rounding_floor,
    squared_deviations,
)
from .pvalues import detectable_effect, normal_p_values, p_value_floor
from .replay import estimates_follow_their_generator
from .sequential import power_z

__all__ = [
    "OrderingClaim",
    "closed_form_ordering_check",
    "domain_refusal",
    "one_over_m_check",
    "ordering_claims",
    "variance_ordering_check",
]

Aggregate = Literal["pairs", "mean"]
_F64 = torch.float64


def child_seed(seed: int, k: int) -> int:
    """The k-th independent child seed of ``seed`` (its own SeedSequence spawn key), a 63-bit integer."""
    state = np.random.SeedSequence(seed, spawn_key=(0x0D3E, k)).generate_state(1, dtype=np.uint64)[0]
    return int(state) & (2**63 - 1)


def _estimates(est, x, y) -> Callable[[torch.Generator, int], torch.Tensor]:
    if hasattr(est, "sample_estimates"):
        return lambda g, r: est.sample_estimates(x, y, g, r)
    if callable(est):
        return est
    raise TypeError(
        "an estimator must have sample_estimates(x, y, generator, r) or be a callable estimates(generator, r), "
        f"got {type(est).__name__}"
    )


def _draw(est, x, y, draws: int, seed: int, block: int, role: str) -> tuple[Moments, torch.Tensor]:
    """Moments (montecarlo.moments, bitwise reproducible) and the raw [draws, P] samples. Each block of estimates
    must be a real floating-point tensor [r, P], P = len(x): an error naming ``role`` (the argument that gave
    ``est``) otherwise, before anything is read from it (a callable of another width was compared column by column
    with no error, or failed inside the comparison with a message about sizes)."""
    kept: list[torch.Tensor] = []
    f = _estimates(est, x, y)
    num_pairs = x.shape[0]

    def checked(g, r):
        out = f(g, r)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{role}: estimates must be a torch.Tensor [r, P] = [{r}, {num_pairs}], got "
                            f"{type(out).__name__}")
        if not out.dtype.is_floating_point:
            raise ValueError(f"{role}: estimates must be a real floating-point tensor, got {out.dtype}")
        if tuple(out.shape) != (r, num_pairs):
            raise ValueError(f"{role}: estimates must have shape [r, P] = [{r}, {num_pairs}] (one column per pair "
                             f"of x and y), got {tuple(out.shape)}")
        return out

    def capture(g, r):
        out = checked(g, r)
        kept.append(out.detach().to("cpu", _F64))
        return out

    with torch.no_grad():
        estimates_follow_their_generator(checked, role, seed)
        m = moments(capture, draws, seed=seed, block=block)
    return m, torch.cat(kept)


def _variance_floor(samples: torch.Tensor) -> torch.Tensor:
    """[P] the sample variance that rounding alone can give each pair: estimates within F_p of one exact value
    (:func:`~kerneltheory.testing.checks.pair_rounding_floor`, ROUNDING_ULPS·ε·max_r |X_rp|) have s² ≤ F_p²·n/(n − 1);
    twice that F_p for margin. Per pair, from its own estimates:
    one floor for the whole batch (the largest variance's) called a pair with a 10¹⁴ times smaller but real variance
    zero, and rounding noise on estimates of size 1 real (the module docstring, "Zero variance")."""
    n = samples.shape[0]
    f = 2 * pair_rounding_floor(samples)
    return f * f * n / max(n - 1, 1)


def _underflowed(samples: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """[P] the pairs whose sample variance s² is below float64's smallest normal number although their estimates vary
    beyond rounding (the estimates rescaled by a power of two, exactly, to max |X| in [1/2, 1) where it lies outside
    2^±40 (:func:`~kerneltheory.testing.checks.binade_exponents`), have a variance above :func:`_variance_floor`):
    s² underflowed, to 0 below about 10⁻³²⁴ (estimates of size 10⁻¹⁶² and less), and "zero
    variance on both sides, nothing to order" would pass a reversed claim there (a review: positive against
    hyperbolic features at SM ≈ 7·10⁻¹⁷¹). Such pairs refuse the row (fourth moments underflow first and are refused by
    the guard, from estimates of about 10⁻⁷⁷)."""
    scaled = torch.ldexp(samples, binade_exponents(samples.abs().amax(0)))
    real = scaled.var(0) > _variance_floor(scaled)
    return real & (s2 < torch.finfo(_F64).smallest_normal)


def _underflow_detail(where: torch.Tensor, top: torch.Tensor, what: str) -> str:
    """The refusal's detail for the pairs ``where`` (:func:`_underflowed`), ``top`` [P] their largest |estimate|."""
    i = int(torch.nonzero(where)[0])
    return (f"{int(where.sum())} pair(s) have a sample variance below float64's smallest normal number while their "
            f"estimates vary (pair {i}{what}: estimates up to {float(top[i]):.3g}): s² underflowed "
            "and orders nothing; scale the estimates (e.g. by a power of two) into float64's range to compare them")


def _var_of_s2(m: Moments) -> torch.Tensor:
    """Var(s²) ≈ (μ̂₄ − s⁴(n − 3)/(n − 1))/n, floored at the Gaussian value 2s⁴/(n − 1)."""
    n, s2 = m.count, m.variance
    v = (m.fourth_central - s2**2 * (n - 3) / (n - 1)) / n
    return torch.where(v > 0, v, 2 * s2**2 / (n - 1))


def _log_s2(s2, var_s2, positive) -> tuple[torch.Tensor, torch.Tensor]:
    """log s² with its first-order bias removed (E log s² ≈ log σ² − Var(s²)/(2σ⁴)) and its delta-method
    variance Var(s²)/s⁴; 0 where s² is 0."""
    safe = torch.where(positive, s2, torch.ones_like(s2))
    v = torch.where(positive, var_s2 / safe**2, torch.zeros_like(s2))
    return torch.log(safe) + v / 2, v


def _deviation_shape(samples: torch.Tensor, mean: torch.Tensor, *, total: bool = False):
    """Per pair, (w, γ) of Y = (X − X̄)² (:func:`~kerneltheory.testing.checks.squared_deviations`): w = sd(Y)/mean(Y),
    the standard deviation of one draw's term of log s² by the delta method (Var(log s²) ≈ w²/n), and γ, the
    skewness of Y; 0 where Y is 0. Both are invariant under X ↦ cX and read in a power-of-two unit so that small
    draws do not underflow. ``total``: of the one sum U = Σ_p Y_p instead (the
    statistic of ``aggregate="mean"``)."""
    _, shape = squared_deviations(samples.detach().to(_F64).cpu(), mean.to(_F64).cpu(), total=total)
    mu, var = shape.mean, shape.population_variance
    w = torch.where(mu > 0, var.clamp_min(0.0).sqrt() / torch.where(mu > 0, mu, torch.ones_like(mu)), 0.0)
    return w, _skewness(shape)


def _combined_skewness(coef: torch.Tensor, w: torch.Tensor, skew: torch.Tensor) -> torch.Tensor:
    """[P] the skewness of one draw of Σ_k c_k·log s²_k over independent samples k (rows of ``coef``, ``w``,
    ``skew`` [K, P]), each log s²_k read as the mean of n terms of standard deviation w_k and skewness γ_k:
    Σ c_k³γ_kw_k³ / (Σ c_k²w_k²)^{3/2} (third cumulants add, with their signs: two sides of similar tails largely
    cancel, as they do in the statistic); 0 where the sum has no spread (proofs/verification.md, item 10(b))."""
    spread = (coef**2 * w**2).sum(0)
    third = (coef**3 * skew * w**3).sum(0)
    return torch.where(spread > 0, third / torch.where(spread > 0, spread, torch.ones_like(spread)) ** 1.5, 0.0)


def _skewed_test(p: torch.Tensor, skew: torch.Tensor, n: int, name: str, claim: str, alpha: float, seed: int,
                 normal: torch.Tensor, *, sides: int = 2, tested: torch.Tensor | None = None,
                 pairs: torch.Tensor | None = None) -> float | CheckResult:
    """The Bonferroni p-value P·min p of skew-corrected normal p-values ``p`` (``sides`` = 1: halves of the two-sided
    ones), or the row that decides instead: a refusal when a p-value is not a probability (never a pass: ``min(1,
    NaN)`` is 1 in Python; :func:`~kerneltheory.testing.checks._bonferroni`), and, when nothing rejects, a refusal when
    at some pair decided by the normal law (``normal``) the skewness keeps every z from the level (its smallest
    p-value, :func:`~kerneltheory.testing.pvalues.p_value_floor`, times P, above α), as in
    :func:`~kerneltheory.testing.checks.variance_check`. ``tested``: the pairs that count (others get p = 1);
    ``pairs``: the caller's index of each entry (messages)."""
    base = dict(name=name, claim=claim, alpha=alpha, sample_size=n, seed=seed)
    p_adj, idx = _bonferroni(p if tested is None else torch.where(tested, p, 1.0))
    label = (lambda i: int(pairs[i])) if pairs is not None else (lambda i: i)  # noqa: E731
    if math.isnan(p_adj):
        return _not_a_probability(p, idx, "normal", base, None, pairs)
    floor = p_value_floor(skew, n, studentised=True) / sides * p.numel()
    blind = normal & (floor > alpha)
    if bool(blind.any()) and not p_adj <= alpha:
        first = int(torch.nonzero(blind)[0])
        return CheckResult.refusal(
            f"{int(blind.sum())} of {p.numel()} pairs have squared deviations too skewed for {n} draws at level "
            f"{alpha:.3g} (at pair {label(first)}: the statistic's skewness {float(skew[first]):.3g} keeps the "
            f"smallest p-value, {float(floor[first]):.3g} after Bonferroni, above the level); the other pairs agree "
            "with the claim", **base)
    return p_adj


#: the refusal of a row at which both sides are 0 everywhere (a row that would otherwise pass having compared nothing)
_NOTHING_VARIES = ("both sides are 0 (within rounding) at {what} ({detail}): the row orders nothing; give pairs "
                   "at which the estimators vary (at x = y = 0 positive and hyperbolic features are exact, at x = y "
                   "trigonometric ones)")


def _refused(name, claim, alpha, n, seed, detail) -> CheckResult:
    return CheckResult.refusal(detail, name=name, claim=claim, alpha=alpha, sample_size=n, seed=seed)


HUGE = math.sqrt(torch.finfo(_F64).max)
Quantity = Literal["variance", "log"]


def domain_refusal(*values: torch.Tensor, quantity: Quantity = "variance") -> str | None:
    """Why ``values`` are outside the domain of an ordering check, or None when they are inside it.

    ``quantity="variance"``: every value finite, ≥ −(rounding floor of all of them) and ≤ :data:`HUGE`;
    ``"log"`` (log second moments, any sign): finite and |value| ≤ :data:`HUGE`."""
    if quantity not in ("variance", "log"):
        raise ValueError(f"quantity must be 'variance' or 'log', got {quantity!r}")
    for v in values:
        if v.is_complex():  # .to(float64) would drop the imaginary part: sqrt(−4 + 0j) read as 0
            return f"a value is complex ({v.dtype}): the formula is outside its real domain"
    flat = [v.detach().to("cpu", _F64).flatten() for v in values]
    for v in flat:
        if not bool(torch.isfinite(v).all()):
            return f"a value is not finite ({int((~torch.isfinite(v)).sum())} of {v.numel()})"
    for v in flat:
        if v.numel() and float(v.abs().max()) > HUGE:
            return f"a value exceeds {HUGE:.3g} in magnitude ({float(v.abs().max()):.3g}): its square overflows"
    if quantity == "variance":
        floor = rounding_floor(*flat)
        for v in flat:
            if v.numel() and float(v.min()) < -floor:
                return f"a variance is negative ({float(v.min()):.6g}): the formula is outside its domain"
    return None


def _hidden_negative(b: torch.Tensor, w: torch.Tensor) -> str | None:
    """Why closed-form variances ``b``, ``w`` [P] (past :func:`domain_refusal`) are refused at a pair: a value below
    −(that pair's own rounding floor) that the floor of the largest value let through (a variance of −1 beside one of
    10¹⁶ was not refused), or None. Each pair's closed form is computed from that pair alone."""
    own = pair_rounding_floor(b, w)
    for v in (b, w):
        hidden = v < -own
        if bool(hidden.any()):
            i = int(torch.nonzero(hidden)[0])
            return (f"a variance is negative at pair {i} ({float(v[i]):.6g}, beyond that pair's own rounding "
                    f"{float(own[i]):.3g} but within the rounding of the largest value, {rounding_floor(b, w):.3g}): a "
                    "formula outside its domain and rounding of terms that large cannot be told apart; compare pairs "
                    "of similar magnitude in separate rows")
    return None


def _moments_refusal(*ms: Moments) -> str | None:
    """Why sample moments cannot be ordered (non-finite or huge mean, variance or fourth moment), or None."""
    for m in ms:
        why = domain_refusal(m.mean, quantity="log") or domain_refusal(m.variance, m.fourth_central)
        if why:
            return "sample moments: " + why
    return None


def _check_common(x, y, draws, seed, alpha):
    x = check_points(x, "x")
    y = check_points(y, "y")
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must both have shape [P, d], got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x and y must hold at least one pair (P >= 1), got P = 0")
    return (
        x,
        y,
        check_int(draws, "draws", minimum=2),
        check_int(seed, "seed", minimum=0),
        check_alpha(alpha),
    )


def variance_ordering_check(
    better,
    worse,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    draws: int,
    seed: int,
    alpha: float = 1e-6,
    name: str | None = None,
    aggregate: Aggregate = "pairs",
    block: int = 256,
) -> CheckResult:
    """Test the claim Var(``better``) ≤ Var(``worse``) at the P pairs (x_p, y_p) (see the module docstring).

    ``better``/``worse``: estimators with ``sample_estimates(x, y, generator, r) -> [r, P]`` (e.g. from
    :func:`kerneltheory.estimators.get`) or callables ``estimates(generator, r) -> [r, P]``. Data-dependent
    estimators (OPRF) take their statistics from the whole of x and y. ``aggregate``: ``"pairs"`` (every pair,
    Bonferroni) or ``"mean"`` (the mean variance over the pairs: a sequence-level claim).
    """
    x, y, n, seed, alpha = _check_common(x, y, draws, seed, alpha)
    if aggregate not in ("pairs", "mean"):
        raise ValueError(f"aggregate must be 'pairs' or 'mean', got {aggregate!r}")
    name = name or f"{getattr(better, 'name', 'better')} ≤ {getattr(worse, 'name', 'worse')}"
    mb, sb = _draw(better, x, y, n, child_seed(seed, 0), block, "better")
    mw, sw = _draw(worse, x, y, n, child_seed(seed, 1), block, "worse")
    why = _moments_refusal(mb, mw)
    if why:
        return _refused(name, "ordering", alpha, n, seed, why)
    if aggregate == "mean":  # one "pair": Σ_p s²_p = Σ_r U_r/(n − 1), U_r = Σ_p (X_rp − X̄_p)²
        vb, vw = mb.variance.sum(0, keepdim=True), mw.variance.sum(0, keepdim=True)
        ub = Moments.from_samples(((sb - mb.mean) ** 2).sum(-1, keepdim=True))
        uw = Moments.from_samples(((sw - mw.mean) ** 2).sum(-1, keepdim=True))
        var_b, var_w = ub.variance / n * (n / (n - 1)) ** 2, uw.variance / n * (n / (n - 1)) ** 2
    else:
        vb, vw = mb.variance, mw.variance
        var_b, var_w = _var_of_s2(mb), _var_of_s2(mw)
    ok_b, worst_b = clt_guard(mb)  # the per-pair fourth-moment guard, as in checks.variance_check
    ok_w, worst_w = clt_guard(mw)
    if aggregate == "mean":  # and the guard of the mean of U itself (its tails are those of X²)
        (ok_ub, worst_ub), (ok_uw, worst_uw) = clt_guard(ub), clt_guard(uw)
        ok_b, worst_b = ok_b and ok_ub, max(worst_b, worst_ub)
        ok_w, worst_w = ok_w and ok_uw, max(worst_w, worst_uw)
    if not (ok_b and ok_w):
        return _refused(
            name,
            "ordering",
            alpha,
            n,
            seed,
            f"fourth moment too large for {n} draws (guard {max(worst_b, worst_w):.3g})",
        )
    if aggregate == "mean":
        floor_b, floor_w = _variance_floor(sb).sum(0, keepdim=True), _variance_floor(sw).sum(0, keepdim=True)
        zeros = torch.zeros(1, dtype=torch.bool)
    else:
        floor_b, floor_w = _variance_floor(sb), _variance_floor(sw)
        zeros = (sb == 0).all(0) & (sw == 0).all(0)  # exactly 0 in every draw: an underflow, or a map that is 0 there
    pos_b, pos_w = vb > floor_b, vw > floor_w
    lb, rb = _log_s2(vb, var_b, pos_b)
    lw, rw = _log_s2(vw, var_w, pos_w)
    z = (lb - lw) / (rb + rw).sqrt()
    z = torch.where(pos_b & pos_w, z, torch.where(pos_b, math.inf, 0.0))  # 0 vs 0: nothing to order
    both_zero = ~pos_b & ~pos_w
    under_b, under_w = _underflowed(sb, mb.variance), _underflowed(sw, mw.variance)  # refused below, own messages
    if bool(both_zero.all()) and not bool((zeros | under_b | under_w).any()):
        return _refused(name, "ordering", alpha, n, seed, _NOTHING_VARIES.format(
            what="the mean over the pairs" if aggregate == "mean" else f"all {vb.numel()} pairs",
            detail=f"s² {float(vb.max()):.3g} and {float(vw.max()):.3g} at most"))
    # log s² is a mean of the squared deviations Y (n terms): their skewness enters the p-value (Cramér)
    w_b, g_b = _deviation_shape(sb, mb.mean, total=aggregate == "mean")
    w_w, g_w = _deviation_shape(sw, mw.mean, total=aggregate == "mean")
    coef = torch.tensor([[1.0], [-1.0]], dtype=_F64)
    skew = _combined_skewness(coef, torch.stack([w_b, w_w]), torch.stack([g_b, g_w]))
    skew = torch.where(pos_b & pos_w, skew, 0.0)  # a side of zero variance: decided without the normal law
    p = torch.where(z > 0, normal_p_values(z, skew, n, studentised=True) / 2, torch.where(z <= 0, 1.0, math.nan))
    decided = _skewed_test(p, skew, n, name, "ordering", alpha, seed, pos_b & pos_w, sides=1, tested=~both_zero)
    if isinstance(decided, CheckResult):
        return decided
    p_adj = decided
    key = torch.where(both_zero, math.inf, p)  # the worst pair: the smallest p, among equal ones (p = 1 where z ≤ 0)
    idx = int(torch.argmax(torch.where((key == key.min()) & ~both_zero, z, -math.inf))) if bool(  # the largest z
        (~both_zero).any()) else 0
    ratio = torch.where(pos_w, vb / torch.where(pos_w, vw, torch.ones_like(vw)), math.inf)
    ratio = torch.where(both_zero, 1.0, ratio)
    effect = float((ratio - 1)[~both_zero].max()) if bool((~both_zero).any()) else 0.0
    what = "mean over pairs" if aggregate == "mean" else f"pair {idx}"
    if bool((under_b | under_w).any()) and not p_adj <= alpha:  # orders nothing, passes nothing
        where, smp, side = (under_b, sb, " of better") if bool(under_b.any()) else (under_w, sw, " of worse")
        return _refused(name, "ordering", alpha, n, seed, _underflow_detail(where, smp.abs().amax(0), side))
    if bool(zeros.any()) and not p_adj <= alpha:  # such a pair orders nothing, but passes nothing either
        return _refused(name, "ordering", alpha, n, seed, (
            f"{int(zeros.sum())} pair(s) have estimates exactly 0 in every draw of both estimators (e.g. pair "
            f"{int(torch.nonzero(zeros)[0])}: exponentials that underflow at large inputs, whose kernel overflows): "
            f"nothing to compare there; the other pairs: worst {what}, s² {float(vb[idx]):.6g} vs "
            f"{float(vw[idx]):.6g}"))
    return CheckResult(
        name=name,
        claim="ordering",
        statistic=float(z[idx]),
        p_value=p_adj,
        alpha=alpha,
        effect_size=effect,
        sample_size=n,
        seed=seed,
        method="one-sided z on log s²(better) − log s²(worse), fourth-moment SE"
        + (" (bonferroni over pairs)" if aggregate == "pairs" else " (sum over pairs)"),
        passed=p_adj > alpha,
        detail=f"worst {what}: s² {float(vb[idx]):.6g} vs {float(vw[idx]):.6g} (ratio {float(ratio[idx]):.4g}); "
        f"median ratio {float(ratio.median()):.4g}",
    )


def closed_form_ordering_check(
    better: torch.Tensor,
    worse: torch.Tensor,
    *,
    name: str,
    seed: int = 0,
    alpha: float = 1e-6,
    aggregate: Aggregate = "pairs",
    quantity: Quantity = "variance",
) -> CheckResult:
    """Exact check of ``better`` ≤ ``worse`` for closed-form values per pair (``quantity="variance"``, or
    ``"log"`` for log second moments): every pair (or the means, ``aggregate="mean"``), up to the rounding floor
    of both. The effect size is the largest ``better − worse`` relative to |worse| (negative when the ordering
    holds strictly). Values outside the domain (:func:`domain_refusal`; complex values) give a refused row. The floor
    is scaled by the largest value; a pair reversed (or a variance negative) beyond its *own* rounding but within that
    floor refuses the row unless another pair fails: with one floor for all pairs, a reversal at pairs of size 1
    beside a pair of size 10¹⁶ passed as "0 vs 0", and each pair's closed form is computed from that pair alone. A row
    whose values are all 0 compares nothing and is refused."""
    for arg, v in (("better", better), ("worse", worse)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{arg} must be a torch.Tensor of closed-form values, got {type(v).__name__}")
        if v.dtype == torch.bool:  # True vs True passed as an ordering of two numbers
            raise TypeError(f"{arg} must hold closed-form values (real numbers), got a bool tensor")
    if aggregate not in ("pairs", "mean"):
        raise ValueError(f"aggregate must be 'pairs' or 'mean', got {aggregate!r}")
    if better.is_complex() or worse.is_complex():  # .to(float64) would drop the imaginary part
        return _refused(name, "ordering", alpha, better.numel(), seed,
                        "closed form: a value is complex: the formula is outside its real domain")
    b, w = better.detach().to(_F64).flatten(), worse.detach().to(_F64).flatten()
    if b.shape != w.shape:
        raise ValueError(
            f"better and worse must have the same shape, got {tuple(b.shape)} and {tuple(w.shape)}"
        )
    if b.numel() == 0:
        raise ValueError("better and worse must hold at least one value, got none")
    why = domain_refusal(b, w, quantity=quantity) or (_hidden_negative(b, w) if quantity == "variance" else None)
    if why:
        return _refused(name, "ordering", alpha, b.numel(), seed, "closed form: " + why)
    if aggregate == "mean":
        b, w = b.mean(0, keepdim=True), w.mean(0, keepdim=True)
    # values computed in a coarser format than float64 carry its rounding: two float32 closed forms of one number
    # (ORF at m = 1 is the iid law) differ by an ulp of float32, which failed the tie at every pair set
    # (each pair's own: one float32 floor scaled by the largest pair refused a 2× reversal at a pair of size 1 beside
    # one of 10⁶, a review finding)
    coarse = max((torch.finfo(t.dtype).eps for t in (better, worse) if t.is_floating_point()), default=0.0)
    floor = rounding_floor(b, w)
    carried = pair_rounding_floor(b, w, feature_eps=coarse) - pair_rounding_floor(b, w)  # the coarse format's part
    bad = b > w + floor + carried
    # each pair's closed form is computed from that pair alone: one floor scaled by the largest pair (10¹⁶) read a
    # reversal at pairs of size 1 as "0 vs 0" and passed it; a pair reversed beyond its own rounding but within that
    # floor may still be rounding of large cancelling terms, so it refuses the row unless another pair fails
    own = pair_rounding_floor(b, w, feature_eps=coarse)
    hidden = (b > w + own) & ~bad
    if bool(hidden.any()) and not bool(bad.any()):
        i = int(torch.nonzero(hidden)[0])
        return _refused(name, "ordering", alpha, b.numel(), seed, (
            f"closed form: {int(hidden.sum())} pair(s) are reversed beyond their own rounding but within the rounding "
            f"of the largest value ({floor:.3g}; e.g. pair {i}: {float(b[i]):.6g} vs {float(w[i]):.6g}): a reversal "
            "and rounding of terms that large cannot be told apart; compare pairs of similar magnitude in separate "
            "rows"))
    rel = (b - w) / torch.where(w.abs() > floor, w.abs(), torch.ones_like(w))
    trivial = (b.abs() <= floor) & (w.abs() <= floor)  # both 0 up to rounding: nothing to order
    if bool(trivial.all()):
        return _refused(name, "ordering", alpha, b.numel(), seed, "closed form: " + _NOTHING_VARIES.format(
            what="the mean over the pairs" if aggregate == "mean" else f"all {b.numel()} pairs",
            detail="an exact 0 cannot be told from closed forms that underflowed"))
    rel = torch.where(trivial & ~bad, -math.inf, rel)
    idx = int(torch.argmax(rel)) if bool((~trivial | bad).any()) else 0
    rel = torch.where(torch.isinf(rel), 0.0, rel)
    row = property_check(
        int(bad.sum()),
        b.numel(),
        claim="ordering",
        name=name,
        seed=seed,
        alpha=alpha,
        example=f"worst {'mean' if aggregate == 'mean' else f'pair {idx}'}: {float(b[idx]):.6g} vs {float(w[idx]):.6g}",
    )
    row.method = "closed form (exhaustive)"
    row.effect_size = float(rel[idx])
    return row


def _fit_slope(
    logm: torch.Tensor, logv: torch.Tensor, var: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted least squares slope, its standard error and its coefficients per column: logm [K], logv/var
    [K, P]; the slope is Σ_k c_k·logv_k with c [K, P]."""
    w = 1.0 / var
    xbar = (w * logm[:, None]).sum(0) / w.sum(0)
    sxx = (w * (logm[:, None] - xbar) ** 2).sum(0)
    coef = w * (logm[:, None] - xbar) / sxx  # Σ_k c_k = 0, so the weighted mean of logv drops out
    slope = (coef * logv).sum(0)
    return slope, 1.0 / sxx.sqrt(), coef


def one_over_m_check(
    estimator,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    ms: Sequence[int] = (8, 32, 128, 512),
    draws: int,
    seed: int,
    alpha: float = 1e-6,
    name: str | None = None,
    block: int = 256,
    **kw,
) -> CheckResult:
    """Test H₀: Var ∝ 1/m (slope −1 of log s² against log m) at the P pairs (see the module docstring).

    ``estimator``: a registry name (built with :func:`kerneltheory.estimators.get` at d = x.shape[-1] and
    each m, with ``**kw``) or a callable ``make(m)`` returning an estimator (``sample_estimates``) or an
    ``estimates(generator, r)`` callable. Pairs whose variance is 0 at every m (deterministic estimates, e.g.
    positive features at z = 0) carry no slope and are left out; the detail says how many. A pair whose variance is 0
    at some m but not at others (no v/m is), or whose s² underflowed at some m, refuses the row unless another pair
    fails (a pair 0 at one m and of variance 1 at the others was left out and the row passed).
    """
    x, y, n, seed, alpha = _check_common(x, y, draws, seed, alpha)
    ms = [check_int(m, "ms[i]", minimum=1) for m in ms]
    if len(set(ms)) < 2:
        raise ValueError(f"ms must hold at least two distinct feature counts, got {ms}")
    if isinstance(estimator, str):
        label = estimator
        make = lambda m: E.get(label, x.shape[-1], m, **kw)  # noqa: E731
    elif callable(estimator):
        label, make = getattr(estimator, "__name__", "estimator"), estimator
    else:
        raise TypeError(
            f"estimator must be a registry name or a callable make(m), got {type(estimator).__name__}"
        )
    name = name or f"{label}: Var ∝ 1/m over m = {ms}"
    logv, var_log, nonzero, shapes, under = [], [], [], [], []
    for k, m in enumerate(ms):
        mom, samples = _draw(make(m), x, y, n, child_seed(seed, k), block, f"estimator at m = {m}")
        why = _moments_refusal(mom)
        if why:
            return _refused(name, "1/m", alpha, n, seed, f"at m = {m}: {why}")
        ok, worst = clt_guard(mom)
        if not ok:
            return _refused(
                name,
                "1/m",
                alpha,
                n,
                seed,
                f"fourth moment too large for {n} draws at m = {m} (guard {worst:.3g})",
            )
        s2 = mom.variance
        pos = s2 > _variance_floor(samples)
        under.append((_underflowed(samples, s2), samples.abs().amax(0), m))  # not the samples: memory O(P) per m
        lv, v = _log_s2(s2, _var_of_s2(mom), pos)
        logv.append(lv)
        var_log.append(v)
        nonzero.append(pos)
        shapes.append(_deviation_shape(samples, mom.mean))
    keep = torch.stack(nonzero).all(0)
    dropped = int((~keep).sum())
    if not bool(keep.any()):
        return _refused(
            name, "1/m", alpha, n, seed, "every pair has zero variance at some m: no slope to fit"
        )
    logm = torch.log(torch.tensor(ms, dtype=_F64))
    slope, se, coef = _fit_slope(logm, torch.stack(logv)[:, keep], torch.stack(var_log)[:, keep])
    z = (slope + 1.0) / se
    w = torch.stack([w_ for w_, _ in shapes])[:, keep]
    skew = _combined_skewness(coef, w, torch.stack([g for _, g in shapes])[:, keep])  # of β̂ = Σ_m c_m log s²_m
    p = normal_p_values(z, skew, n, studentised=True)
    decided = _skewed_test(p, skew, n, name, "1/m", alpha, seed, torch.ones(p.shape, dtype=torch.bool),
                           pairs=torch.nonzero(keep).flatten())
    if isinstance(decided, CheckResult):
        return decided
    p_adj, idx = decided, int(torch.argmin(p))
    pair = int(torch.nonzero(keep).flatten()[idx])
    if not p_adj <= alpha:  # pairs left out must carry no slope: a variance that underflowed, or 0 at some m only
        for where, top, m in under:
            if bool(where.any()):
                return _refused(name, "1/m", alpha, n, seed, _underflow_detail(where, top, f" at m = {m}"))
        positive_at = torch.stack(nonzero)
        mixed = positive_at.any(0) & ~positive_at.all(0)
        if bool(mixed.any()):
            i = int(torch.nonzero(mixed)[0])
            at = [m for m, z in zip(ms, positive_at[:, i].tolist(), strict=True) if z]
            return _refused(name, "1/m", alpha, n, seed, (
                f"{int(mixed.sum())} pair(s) have variance 0 (within rounding) at some m and not at others (pair {i}: "
                f"positive at m = {at}, 0 at the others): a variance v/m is 0 at every m or at none, so such a pair "
                "is no zero-variance pair to leave out, and has no slope to fit; the other pairs agree with the claim"))
        # a slope known too poorly to tell the claim (−1) from a variance that does not fall with m (0) at any pair
        # resolves nothing: ms = (8, 9) passed an m-independent variance at 3 of 4 seeds
        reach = detectable_effect(se, alpha / se.numel(), power_z())
        if bool((reach >= 1.0).all()):
            best = int(torch.argmin(se))
            at = int(torch.nonzero(keep).flatten()[best])
            return _refused(name, "1/m", alpha, n, seed, (
                f"the slope is known to ± {float(se[best]):.3g} at best (pair {at})"
                f": the test cannot tell the claim's slope −1 from 0 (a variance that does not fall with m) with power "
                f"0.9 at level {alpha:.3g}; feature counts further apart (max/min = {max(ms) / min(ms):.3g} here) or "
                "more draws resolve it"))
    return CheckResult(
        name=name,
        claim="1/m",
        statistic=float(z[idx]),
        p_value=p_adj,
        alpha=alpha,
        effect_size=float((slope + 1).abs().max()),
        sample_size=n * len(ms),
        seed=seed,
        method="weighted least squares slope of log s², delta-method SE (bonferroni over pairs)",
        passed=p_adj > alpha,
        detail=f"worst pair {pair}: slope {float(slope[idx]):.4f} ± {float(se[idx]):.3g}; "
        f"median slope {float(slope.median()):.4f}; {dropped} zero-variance pair(s) left out",
    )


# ---------------------------------------------------------------------------------------------------
# The orderings claimed in the literature
# ---------------------------------------------------------------------------------------------------

ClosedForm = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class OrderingClaim:
    """A claimed ordering "``better`` has no larger variance than ``worse``".

    ``better``/``worse``: (registry name, num_features, keyword arguments for ``get``). ``closed_form(x, y)``
    returns the two per-pair quantities the claim orders exactly (variances, or for OPRF the one-feature log
    second moments it minimises: ``quantity="log"``), or is None. ``aggregate``: how the claim quantifies over
    pairs.
    """

    name: str
    better: tuple[str, int, dict]
    worse: tuple[str, int, dict]
    source: str
    aggregate: Aggregate = "pairs"
    closed_form: ClosedForm | None = None
    note: str = ""
    kw: dict = field(default_factory=dict)
    quantity: Quantity = "variance"

    def check(self, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, alpha: float = 1e-6) -> CheckResult:
        """:func:`closed_form_ordering_check` of the closed form at the pairs (x, y); a refused row when there is
        no closed form, when the formula rejects its parameters (ValueError) or when its values are outside
        the domain (:func:`domain_refusal`)."""
        if self.closed_form is None:
            return _refused(self.name, "ordering", alpha, x.shape[0], seed, "no closed form for this claim")
        try:
            better, worse = self.closed_form(x, y)
        except ValueError as err:
            return _refused(self.name, "ordering", alpha, x.shape[0], seed, f"closed form outside its domain: {err}")
        return closed_form_ordering_check(
            better, worse, name=self.name, seed=seed, alpha=alpha, aggregate=self.aggregate, quantity=self.quantity
        )

    def build(self, dim: int):
        """The two estimators at dimension ``dim``."""
        (nb, mb, kb), (nw, mw, kw) = self.better, self.worse
        return E.get(nb, dim, mb, **kb), E.get(nw, dim, mw, **kw)


def _sq(t):
    return (t * t).sum(-1)


def _oprf_log_second_moments(x, y):
    """One-feature log E(f₁f₂)² at the sequence's A* (OPRF) and at A = 0 (positive features), per pair."""
    d = x.shape[-1]
    a = theory.oprf_optimal_a(theory.oprf_phi_bar(x.double(), y.double()), d)[..., 0, 0]
    return (
        theory.gerf_second_moment_log(x, y, a, 1, -0.5, d),
        theory.gerf_second_moment_log(x, y, 0.0, 1, -0.5, d),
    )


def ordering_claims(dim: int, num_features: int) -> list[OrderingClaim]:
    """The orderings of MATH.md §4 and their papers, at dimension ``dim`` and m = ``num_features``."""
    d = check_int(dim, "dim", minimum=1)
    m = check_int(num_features, "num_features", minimum=1)
    kern = {"weighted": False}
    trig_var = lambda x, y, mm: theory.gaussian_kernel_trig_variance(torch.exp(-_sq(x - y) / 2), mm)  # noqa: E731
    claims = [
        OrderingClaim(
            f"ORF ≤ iid, positive features for SM, m = {m} {'≤' if m <= d else '>'} d = {d}",
            ("positive/orthogonal", m, {}),
            ("positive/gaussian", m, {}),
            "Choromanski et al. 2021, Performer, Theorem 2 (stated for m ≤ d; independent χ_d row norms needed)",
            closed_form=lambda x, y: (
                theory.orf_positive_variance(x, y, m),
                theory.softmax_positive_variance(x, y, m),
            ),
            note="the exact ORF variance (proofs/orthogonal_variance.md, item 3); for m > d the ⌈m/d⌉ "
            "independent blocks each add their gain",
        ),
        OrderingClaim(
            f"ORF ≤ iid, trig features for the Gaussian kernel, m = {m}, d = {d}",
            ("trig/orthogonal", m, kern),
            ("trig/gaussian", m, kern),
            "Yu et al. 2016, Orthogonal Random Features, Theorem 1 (leading term in 1/d)",
            closed_form=lambda x, y: (theory.orf_trig_variance(x, y, m), trig_var(x, y, m)),
            note="the exact ORF variance (proofs/orthogonal_variance.md, item 3): per pair it exceeds the iid one "
            "for ζ = ‖x − y‖ ≳ 3 when d ≥ 3 (by up to 1.5%, d = m = 4, ζ ≈ 3.5)",
        ),
        OrderingClaim(
            f"hyperbolic ≤ positive at equal m = {m} frequencies",
            ("hyperbolic/gaussian", m, {}),
            ("positive/gaussian", m, {}),
            "Choromanski et al. 2021, Performer, Lemma 2 (same m random samples; hyperbolic has 2m features)",
            closed_form=lambda x, y: (
                theory.softmax_hyperbolic_variance(x, y, m),
                theory.softmax_positive_variance(x, y, m),
            ),
        ),
        OrderingClaim(
            f"hyperbolic ≤ positive at equal feature dimension D = {2 * (m // 2)}",
            ("hyperbolic/gaussian", max(m // 2, 1), {}),
            ("positive/gaussian", 2 * max(m // 2, 1), {}),
            "a consequence of Lemma 2: Var_hyp(D/2) = (1 − e^{−‖z‖²})·Var_pos(D)",
            closed_form=lambda x, y: (
                theory.softmax_hyperbolic_variance(x, y, max(m // 2, 1)),
                theory.softmax_positive_variance(x, y, 2 * max(m // 2, 1)),
            ),
            note="smaller gain than at equal m (factor 1 − e^{−‖z‖²} instead of ½(1 − e^{−‖z‖²}))",
        ),
        OrderingClaim(
            f"OPRF ≤ positive on its sequence, m = {m}",
            ("oprf/gaussian", m, {}),
            ("positive/gaussian", m, {}),
            "Likhosherstov et al. 2022, Chefs' Random Tables, Theorem 4.1: A* minimises the mean over the "
            "sequence's pairs of log E(f₁f₂)²",
            aggregate="mean",
            closed_form=_oprf_log_second_moments,
            quantity="log",
            note="a sequence-level claim: per pair it fails where ‖x + y‖ is small (z = 0: positive features are "
            "exact, OPRF is not)",
        ),
        OrderingClaim(
            f"paired trig (m = {m}) ≤ trig with phase (D = {2 * m}) for the Gaussian kernel",
            ("trig/gaussian", m, kern),
            ("trig_phase/gaussian", 2 * m, {}),
            "MATH.md §4; Sutherland & Schneider 2015, On the Error of Random Fourier Features, §2",
            closed_form=lambda x, y: (
                trig_var(x, y, m),
                theory.trig_phase_variance(
                    torch.exp(-_sq(x - y) / 2), torch.exp(-_sq(2 * (x - y)) / 2), 2 * m
                ),
            ),
        ),
    ]
    return claims
