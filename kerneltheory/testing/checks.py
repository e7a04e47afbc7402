r"""Calibrated statistical checks of claims (CONVENTIONS.md).

Each check is a hypothesis test with a declared false-failure rate α, never an ``allclose`` with a chosen
tolerance. It returns a :class:`CheckResult` row (name, statistic, p-value, α, effect size, sample size, seed,
method, passed). The test of a mean is chosen by the estimator's tail class:

* **Bounded** when every estimate lies in a known interval [−B_p, B_p] (trigonometric features:
  |φ(x)ᵀφ(y)| ≤ w(x)w(y)): Hoeffding and the empirical Bernstein bound, both exact for every n
  (:func:`~kerneltheory.testing.pvalues.bounded_p_values`),
  combined (Bonferroni) with the CLT below when its guard holds, so a loose bound
  (OPRF's, say) costs at most a factor 2 in p.
* **CLT** (z-test) with the exact variance if the claim provides one, else the sample variance, guarded by the
  fourth moment: the relative error of the sample variance is about √((κ_p − 1)/n) and the Berry–Esseen
  term |skew_p|/√n; when either exceeds :data:`GUARD` the normal approximation is not trusted.
* **Median of means** with Chebyshev inside the blocks, when the CLT guard fails but the exact variance σ_p²
  is known: with k blocks of b draws, a block mean misses by more than t with probability q ≤ σ²/(b t²), so
  the median misses only if at least ⌈k/2⌉ blocks do: p ≤ P(Binomial(k, q) ≥ ⌈k/2⌉). Valid for any tail.
* **Refused** when none of these applies (heavy tails, no variance, too few draws): the row says so and
  counts as not passed — a check that cannot mean anything never passes silently.

Across the P pairs of an input family the p-value is Bonferroni-adjusted (P × min p_p), so α is the family's
false-failure rate; a p-value that is not a number in [0, 1] at some pair refuses the row and names the pair.

A claimed variance makes the hypothesis a joint one (mean *and* variance): an inflated claim makes the CLT and
median of means lenient. :func:`mean_check` therefore also returns the test without it, and in a report the
claimed variance decides only where the variance claim is tested and confirmed in the same run
(:mod:`~kerneltheory.testing.reliance`).

Tails. A normal p-value is only as good as the normal approximation *in the tail where α lives*. By Cramér's
moderate-deviation theorem the tail of a standardised mean of n draws with skewness γ is
P(Z > x) = Φ̄(x)·exp(x³γ/(6√n))·(1 + O((1 + x)/√n)); at x ≈ 5.3 (α ≈ 10⁻⁷) and γ/√n = 0.1 this is a factor
12, which a plain z-test ignores. Every CLT p-value here is therefore multiplied by exp(|z|³|γ̂|/(6√n))
(:func:`~kerneltheory.testing.pvalues.normal_p_values`),
conservative for either sign of the skewness. Without a claimed variance the
z-statistic is studentised under H₀ (score form, V₀ = (1/n)Σ(xᵢ − target)², which grows with the deviation),
so a sample that misses the rare large draws of a right-skewed estimate cannot make |z| large by also
shrinking its own standard error. The one-term factor would eventually outgrow Φ̄ and make the p-value rise
with |z|, so it is applied at min(|z|, z_t), z_t = √n/(3c|γ̂|), up to which it provably falls (a tail
probability cannot rise with |z|): the p-value is monotone in |z|. Its smallest value is then p(z_t)
(:func:`~kerneltheory.testing.pvalues.p_value_floor`);
a pair whose floor, Bonferroni-adjusted, is above the level could never be rejected
however far off it is, so the normal test is not used there (the row falls back to a bound, median of means or
a refusal, never a silent pass).

The **variance check** tests the mean of Yᵢ = n/(n−1)·(xᵢ − x̄)², whose average is s² (the linearisation of the
U-statistic s²; Hoeffding 1948), with the same machinery one moment higher: the guard is applied to Y's own
kurtosis and skewness (the eighth and sixth moments of the estimate), the statistic is studentised under H₀,
and the p-value carries the skewness correction. For bounded estimates (|x| ≤ B) the exact finite-sample
bound of Maurer & Pontil (2009, Theorem 10) on the sample standard deviation, |s − σ| ≤ 2B√(2 ln(2/δ)/(n − 1)),
is combined with it (Bonferroni), so the check never depends on the CLT alone there.

Soundness. A claim that is not a finite number at some pair (a NaN or infinite target, variance or reference
error) fails the check and names the pair; so does a claimed variance below zero by more than float64
rounding, and a NaN or negative declared bound (an infinite one means no bound: :func:`declared_bound`). A
claimed variance within rounding of zero (nearly coincident points) is treated as zero. Pairs whose draws agree
up to rounding are compared with a per-pair rounding floor (:func:`pair_rounding_floor`, in the precision of the
features: float32 features get float32's), so one huge pair cannot switch off the others. Draws that agree off their
target are no evidence by themselves where the law may have an atom (a rare event leaves every draw on one value):
such a pair is tested by a claimed variance (Cantelli) or a declared bound, or left untested, the row refused where
it would have failed there (``atoms``, :func:`one_map`; proofs/verification.md, item 3a). Standard errors are
computed without squaring the deviation (hypot); one that is still not a finite float64 refuses the row, since
z = diff/∞ = 0 would pass any deviation. The guard and the skewness are computed from the draws in their own
power-of-two unit (:func:`_shape_moments`), so they do not underflow when the draws are tiny beside the target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from numbers import Real

import numpy as np
import torch
from scipy import special, stats
from scipy.special import ndtri_exp

from .._validation import check_flag, check_real
from ..montecarlo import Moments
from .pvalues import (
    bounded_p_values,
    bounded_reach,
    detectable_effect,
    excludes_detectable_effects,
    normal_p_values,
    p_value_floor,
)
from .sequential import power_z

GUARD = 0.1  # largest trusted √((κ−1)/n) and |skew|/√n
VARIANCE_GUARD = 0.3  # the guard on Y = (x − x̄)² in the variance check (calibration: tests/test_calibration.py)
MIN_DRAWS = 64
ROUNDING_ULPS = 64  # a rounding floor is ROUNDING_ULPS · ε(float64) · the scale of the numbers compared
FEATURE_ULPS = 16  # ... plus FEATURE_ULPS · ε(t) · scale for features returned in a coarser dtype t
_EPS = torch.finfo(torch.float64).eps


@dataclass
class CheckResult:
    """One row of a report.

    ``method`` says how the row was decided; two methods mark rows that are not verdicts: ``"refused"`` (the
    check cannot mean anything here: too few draws, tails too heavy) and ``"stopped"`` (a sequential run ended
    before this check was decided, because every claim it belongs to was already decided). Neither is a pass.
    """

    name: str
    claim: str
    statistic: float
    p_value: float
    alpha: float
    effect_size: float
    sample_size: int
    seed: int
    method: str
    passed: bool
    detail: str = ""
    accepted_early: bool = False  # passed at an early look whose draws exclude the effects the budget detects
    # the same mean test without the claimed variance (:func:`mean_check` given one): what decides when the variance
    # claim is not confirmed (reliance.settle_on_variance); not part of the row's record
    without_variance: CheckResult | None = field(default=None, repr=False, compare=False)
    # [P] p-values of the pairs (before Bonferroni: the row rejects where P·p ≤ α), for a row decided by a statistic
    # that is a symmetric function of the draws (the normal tests, the bounds); the dependence tests of a failed row
    # read the pairs they single out (dependence.dependence_refusal); None where none are kept. Not in the record
    pair_p: torch.Tensor | None = field(default=None, repr=False, compare=False)
    # a refusal because the draws could not decide (tails or skewness too heavy for a normal test, too few draws,
    # moments beyond float64; a variance test's untested heavy-tailed pairs), which says
    # nothing about the claim; False for refusals that stand for a rejection reclassified (draws not independent, a
    # rejection that the claimed variance explains) or for a sign of a defect (every draw the same). Not in the record
    no_evidence: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def refusal(cls, detail: str, **fields) -> CheckResult:
        """The row of a check that cannot mean anything here (too few draws, tails too heavy, ...): no
        statistic, no p-value, method "refused", not passed; ``effect_size`` is NaN unless given."""
        fields.setdefault("effect_size", math.nan)
        return cls(statistic=math.nan, p_value=math.nan, method="refused", passed=False, detail=detail, **fields)

    @classmethod
    def invalid_claim(cls, detail: str, **fields) -> CheckResult:
        """The row of a check whose claim is not a number (a NaN or infinite target or variance at some pair,
        a negative variance): it fails, whatever the draws say."""
        fields.setdefault("effect_size", math.inf)
        return cls(statistic=math.inf, p_value=0.0, method="invalid claim", passed=False, detail=detail, **fields)

    @classmethod
    def certain_failure(cls, method: str, detail: str, **fields) -> CheckResult:
        """The row of a check that fails without a statistic: what it tests cannot hold for these draws whatever
        their law (a non-finite estimate or output, an estimate outside its declared bound, a difference between
        two evaluations of one exact number). Statistic and effect size infinite unless given, p-value 0."""
        fields.setdefault("effect_size", math.inf)
        return cls(statistic=math.inf, p_value=0.0, method=method, passed=False, detail=detail, **fields)

    @property
    def refused(self) -> bool:
        return self.method == "refused"

    @property
    def stopped(self) -> bool:
        return self.method == "stopped"

    @property
    def certain(self) -> bool:
        """A failure that no statistic's level decided (:meth:`certain_failure` of a non-finite estimate or one
        outside its declared bound, :meth:`invalid_claim`): it holds where a check's level is not calibrated. Draws
        that all agree off their target (a deterministic map's z = ∞, ``atoms=False``) are not counted: a law with a
        rare event puts every draw of a sample on one value with probability near 1."""
        return self.status == "failed" and math.isinf(self.statistic) and self.method in CERTAIN_METHODS

    @property
    def status(self) -> str:
        """``"passed"``, ``"failed"``, ``"refused"`` or ``"stopped"``."""
        if self.passed:
            return "passed"
        return "refused" if self.refused else ("stopped" if self.stopped else "failed")

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("without_variance", "pair_p", "no_evidence")}


#: the methods of the rows that fail without a statistic (:attr:`CheckResult.certain`)
CERTAIN_METHODS = ("non-finite estimate", "bounded", "invalid claim")


def _bonferroni(p: torch.Tensor) -> tuple[float, int]:
    """(P × min p, argmin) over the pairs; clipped to 1 because it is a probability bound.

    A p-value that is not a number in [0, 1] (NaN: a computation that broke down) must never read as a pass
    (``min(1, NaN·P)`` is 1 in Python): the result is then (NaN, the first such pair), which the callers turn into
    a refusal naming that pair (:func:`_not_a_probability`)."""
    p = p.to(torch.float64).cpu()
    bad = ~((p >= 0) & (p <= 1))  # true for NaN
    if bool(bad.any()):
        return math.nan, int(torch.nonzero(bad)[0])
    idx = int(torch.argmin(p))
    return min(1.0, float(p[idx]) * p.numel()), idx


def _not_a_probability(p: torch.Tensor, idx: int, method: str, base: dict, labels, index=None) -> CheckResult:
    """The refusal of a check whose p-value at pair ``idx`` is not a probability (see :func:`_bonferroni`)."""
    return CheckResult.refusal(
        f"the {method} p-value at pair {_pair(labels, idx, index)} is {float(p.reshape(-1)[idx])}, not a probability "
        "in [0, 1]: the test broke down there, so it decides nothing",
        **base,
    )


def _mark_early(row: CheckResult, futility) -> None:
    row.accepted_early = True
    row.detail += ("; accepted early: the draws exclude every effect the full budget detects with power "
                   f"{futility.power:g}")


def rounding_floor(*values: torch.Tensor) -> float:
    """ROUNDING_ULPS · ε(float64) · the largest magnitude among ``values``: one scale for a whole comparison
    (used where the compared numbers share one scale, e.g. two variances of one pair)."""
    scale = max(float(v.detach().abs().max()) if v.numel() else 0.0 for v in values)
    return ROUNDING_ULPS * _EPS * scale


def pair_rounding_floor(*values: torch.Tensor, feature_eps: float | None = None) -> torch.Tensor:
    """The rounding floor of each pair: (ROUNDING_ULPS · ε(float64) + FEATURE_ULPS · ε(t)) · the largest magnitude
    S_p at that pair among ``values`` (each ``[P]`` or ``[n, P]``; non-finite entries are ignored, they are caught
    elsewhere). ``feature_eps``: ε(t) of the coarsest dtype t the features were returned in (float32: 2⁻²³,
    bfloat16: 2⁻⁷, float16: 2⁻¹⁰); None, or an ε no coarser than float64's, adds nothing.

    Derivation (proofs/verification.md, item 9): a feature map computing in t returns φ̂ᵢ = φᵢ(1 + δᵢ), ψ̂ᵢ = ψᵢ(1 + ηᵢ)
    with |δᵢ|, |ηᵢ| ≤ K·u (u = ε(t)/2, a budget of K = 15 roundings), so the estimate Σᵢ φ̂ᵢψ̂ᵢ, a sum of D terms
    summed in float64, is off by at most ((1 + Ku)² − 1 + γ_D(float64)(1 + Ku)²)·Σᵢ|φᵢψᵢ| ≤ FEATURE_ULPS·ε(t)·Σᵢ|φᵢψᵢ|
    for D ≤ ε(t)/ε(float64); Σᵢ|φᵢψᵢ| is the estimate itself for positive features and at most ‖φ(x)‖‖φ(y)‖, of mean
    at most √(k(x, x)k(y, y)) for an unbiased map, otherwise."""
    per_unit = ROUNDING_ULPS * _EPS
    if feature_eps is not None and feature_eps > _EPS:
        per_unit += FEATURE_ULPS * feature_eps
    return per_unit * _pair_scale(*values)


def one_map(samples: torch.Tensor, *values: torch.Tensor, feature_eps: float | None = None) -> bool:
    """Whether every pair's draws ``samples`` [n, P] agree up to the pair's rounding floor (:func:`pair_rounding_floor`
    of the samples and ``values``, with ``feature_eps``): the map was one function at every draw, a deterministic
    map or a sampler that ignores its generator. A non-finite draw is no agreement. Where it holds, a mean check takes
    ``atoms=False`` (:func:`mean_check`): an unbiased random map whose every estimate is one value except on a rare
    event, at every pair at once, is the case this reads as deterministic (proofs/verification.md, item 3a)."""
    x = samples.detach().to(torch.float64).cpu()
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        return False
    return bool(agreeing_pairs(x, pair_rounding_floor(x, *values, feature_eps=feature_eps)).all())


def _plus_minus(se: torch.Tensor, own: torch.Tensor, studentised: bool) -> str:
    """The "± …" after a pair's mean in a detail: the test's standard error ``se``, or, where the test studentises
    under the claim (score form, the distance to the target added to the spread) and that makes it more than 1.5× the
    mean's own standard error ``own``, both, named (a user trial read a studentised 0.0627 beside a mean whose draws
    spread by 0.0002 as the mean's own error)."""
    if studentised and float(se) > 1.5 * float(own):
        return (f" ± {float(own):.3g} (its standard error; the test's, which under the claim adds the distance to the "
                f"target, {float(se):.3g})")
    return f" ± {float(se):.3g}"


def exact_reading_rejects(near: torch.Tensor, se: torch.Tensor, tests: float, alpha: float) -> torch.Tensor:
    """Bool, the shape of ``near``: where a normal test of the deviation ``near`` (beyond the rounding floors) with
    standard error ``se``, reading the draws as exact (no skewness factor, so as to refuse more, never less; z = ∞
    where se = 0 and near ≠ 0), rejects at level ``alpha`` Bonferroni-split over ``tests`` tests. The one rule by
    which agreeing draws off their target refuse a pass instead of supporting it (they are evidence only through an
    exact test that rejects: proofs/verification.md, item 3a), shared by :func:`mean_check`'s agreeing pairs and
    the proportionality rows' pairs left out of their differences."""
    positive = se > 0
    z = torch.where(positive, near / torch.where(positive, se, torch.ones_like(se)),
                    torch.where(near != 0, math.inf, 0.0))
    return normal_p_values(z) * tests <= alpha


def agreeing_pairs(samples: torch.Tensor, floor: torch.Tensor, shape: Moments | None = None) -> torch.Tensor:
    """[P] bool: the pairs whose draws ``samples`` [n, P] are one value up to rounding: the guard's
    :func:`degenerate_pairs` (read from ``shape``, the draws' moments in their own unit, computed when not given), or
    a spread max − min within twice ``floor`` [P]. The one reading of "every draw agrees" that :func:`mean_check`'s
    ``atoms`` rule, :func:`one_map` and the proportionality rows share (proofs/verification.md, item 3a)."""
    x = samples.detach().to(torch.float64).cpu()
    if shape is None:
        shape = _shape_moments(Moments.from_samples(x), x)
    return degenerate_pairs(shape) | (x.amax(0) - x.amin(0) <= 2 * floor)


def _pair_scale(*values: torch.Tensor) -> torch.Tensor:
    """S_p of :func:`pair_rounding_floor`: the largest finite magnitude at each pair among ``values``."""
    scales = []
    for v in values:
        a = v.detach().to(torch.float64).cpu().abs()
        top = a.amax(0) if a.dim() == 2 else a
        if not bool(torch.isfinite(top).all()):  # a NaN or an infinity somewhere: the largest finite magnitude
            a = torch.where(torch.isfinite(a), a, torch.zeros_like(a))
            top = a.amax(0) if a.dim() == 2 else a
        scales.append(top)
    return torch.stack(scales).amax(0)


#: The largest share of a pair's claim (its target, or the claimed standard deviation) that the rounding of a feature
#: format coarser than float32 may hide before a check that does not reject is refused instead of passed: the checks
#: are meant to resolve a 2% scale error (the planted defects of the power tests), and bfloat16's floor is 12.5% of
#: S_p, float16's 1.6%. float32's (1.9·10⁻⁶ of S_p) exceeds it only at pairs whose spread is itself near rounding
#: (a claimed variance ~10⁻⁴ of the estimates' scale), which item 9's interval already compares with the floor.
RESOLUTION = 0.01
_F32_EPS = torch.finfo(torch.float32).eps
_FORMAT_NAMES = {2.0**-7: "bfloat16", 2.0**-10: "float16", 2.0**-23: "float32"}


def _share(x: float) -> str:
    return f"{x:.3g} of the claim" if math.isfinite(x) else "more than a claim of 0 (the draws vary)"


def coarse_format_refusal(row: CheckResult, values: Sequence[torch.Tensor], reference: torch.Tensor,
                          feature_eps: float | None, labels=None, what: str = "the mean") -> CheckResult:
    """``row`` unless it passed while the features' format t, coarser than float32, could hide more than
    :data:`RESOLUTION` of the claim:
    where FEATURE_ULPS·ε(t)·S_p (the format's part of :func:`pair_rounding_floor`, S_p from ``values``) exceeds
    RESOLUTION·r_p at a pair with r_p > 0, r = ``reference`` (the target's magnitude for a mean row, the claimed
    standard deviation for a variance row), or where r_p = 0 while the draws (the 2-D ``values``) vary, a refusal
    naming the worst such pair: agreement within that rounding is
    no evidence for the claim (proofs/verification.md, item 9). Failures and refusals are returned unchanged, and
    so is every row for float32 and float64 features."""
    if not row.passed or feature_eps is None or not feature_eps > _F32_EPS:
        return row
    ref = reference.detach().to(torch.float64).cpu().abs()
    share = torch.where(ref > 0, FEATURE_ULPS * feature_eps * _pair_scale(*values) / ref, torch.zeros_like(ref))
    # a claim of 0 (a deterministic estimate) where the draws vary: the spread it denies is what the floor hides
    draws = [v.detach().to(torch.float64).cpu() for v in values if v.dim() == 2]
    varies = torch.stack([v.amax(0) > v.amin(0) for v in draws]).any(0) if draws else torch.zeros_like(ref, dtype=bool)
    share = torch.where((ref == 0) & varies, math.inf, torch.nan_to_num(share, nan=math.inf))
    idx = int(torch.argmax(share))
    if not float(share[idx]) > RESOLUTION:
        return row
    fmt = _FORMAT_NAMES.get(feature_eps, f"a format of machine epsilon {feature_eps:.3g}")
    return CheckResult.refusal(
        f"the features are computed in {fmt}: its rounding may move {what} at pair {_pair(labels, idx)} by up to "
        f"{_share(float(share[idx]))}, more than the {RESOLUTION:g} this check resolves, so agreement "
        f"within that rounding is no pass (audit the map in float32 or float64); {row.detail}",
        **{f.name: getattr(row, f.name) for f in fields(CheckResult)
           if f.name in ("name", "claim", "alpha", "effect_size", "sample_size", "seed")},
    )


#: A pair whose rounding floor reaches this share of its target cannot tell the map from one off by half its target:
#: :func:`unresolved_pairs` leaves it out of what a pass claims.
UNRESOLVED_SHARE = 0.5
#: The words that open the detail of a pass with pairs left out (``check_feature_map`` lists such rows in a note).
LEFT_OUT = "left out of this pass"


def unresolved_pairs(row: CheckResult, atol: torch.Tensor, target: torch.Tensor, labels=None,
                     zero: torch.Tensor | None = None, what: str = "the target") -> CheckResult:
    """A passed mean row with the pairs it cannot speak for left out of what it claims, in every feature format.

    A pair whose rounding floor F_p (``atol``, :func:`pair_rounding_floor`) reaches :data:`UNRESOLVED_SHARE` of a
    target K_p ≠ 0 cannot tell the map from one off by half its target: any such map agrees with K_p within the
    floor. It happens where K_p is far below the scale √(k(x, x)k(y, y)) of the terms an estimate may sum (softmax at
    anti-collinear pairs of large norm: K_p/√(k(x, x)k(y, y)) = e^{−2‖x‖²}; a map doubled beyond norm 4 passed at
    x = −y = 4.5e₁, where F_p = 5500 K_p). Such pairs stay in the test (no rejection changes, so no level), but a
    pass does not speak for them: when every pair of the row is one, the row is refused; when only some are, it
    passes for the others and its detail opens with how many were left out and the worst (proofs/verification.md,
    item 9). ``zero``: the pairs whose target is exactly 0 before any rescaling by a power of two (default: where
    ``target`` is 0); they are tested on the absolute scale of the floor, as before (no scale error moves them), while
    a nonzero target that rescaled to 0 is left out. ``what`` names ``target`` in the messages: proportionality
    rows pass the fitted constant ĉ as the magnitude each difference's floor is measured against
    (:func:`~kerneltheory.testing.proportional.proportional_check`). Failures and refusals are returned unchanged."""
    if not row.passed:
        return row
    k = target.detach().to(torch.float64).cpu().abs()
    f = torch.as_tensor(atol, dtype=torch.float64).cpu().expand_as(k)
    zero = (k == 0) if zero is None else torch.as_tensor(zero, dtype=torch.bool).cpu().expand_as(k)
    share = torch.where(zero, torch.zeros_like(k), f / torch.where(k > 0, k, torch.full_like(k, math.nan)))
    share = torch.where(~zero & (k == 0), math.inf, share)  # a nonzero target below float64's range once rescaled
    unresolved = ~(share < UNRESOLVED_SHARE)  # a floor that is not a number resolves nothing
    if not bool(unresolved.any()):
        return row
    idx = int(torch.argmax(torch.nan_to_num(share, nan=math.inf)))
    how = " (below float64's range once rescaled)" if bool(k[idx] == 0) else f", {float(share[idx]):.3g} times it"
    worst = f"pair {_pair(labels, idx)}: floor {float(f[idx]):.3g} against {what} {float(target[idx]):.3g}{how}"
    count = int(unresolved.sum())
    if count == k.numel():
        keep = ("name", "claim", "alpha", "effect_size", "sample_size", "seed")
        return CheckResult.refusal(
            f"the rounding floor of every pair reaches {UNRESOLVED_SHARE:g} of {what} (worst {worst}): the "
            f"estimates sum terms far larger than it, so a map off by half {what} would agree within "
            f"their rounding and agreement says nothing about the claim; {row.detail}",
            **{f.name: getattr(row, f.name) for f in fields(CheckResult) if f.name in keep},
        )
    row.detail = (f"{count} of {k.numel()} pairs {LEFT_OUT}, their rounding floor at least {UNRESOLVED_SHARE:g} of "
                  f"{what} (worst {worst}); " + row.detail)
    return row


def _unrepresentable(se: torch.Tensor, what: str, base: dict, labels, index=None) -> CheckResult:
    """The refusal of a check whose standard error is not a finite float64 at some pair (its estimates, their
    spread or their deviation from the claim overflow): z = diff/∞ = 0 would read as a perfect pass."""
    idx = int(torch.nonzero(~torch.isfinite(se))[0])
    return CheckResult.refusal(
        f"the {what} at pair {_pair(labels, idx, index)} is {float(se[idx])}, not representable in float64: the "
        "test decides nothing there (rescale the estimates and the claim by one power of two, as check_feature_map "
        "does)",
        **base,
    )


#: Pairs whose estimates, target and claimed standard deviation all lie within 2^±SAFE_BINADE are tested as they
#: are; others are rescaled by an exact power of two so that the largest is in [1/2, 1): the moments up to the
#: eighth that the checks use then stay representable in float64 (2^±320 within its range of about 2^±1022).
SAFE_BINADE = 40


def binade_exponents(ref: torch.Tensor) -> torch.Tensor:
    """Per entry of the magnitudes ``ref`` (finite, ≥ 0), the exponent k with 2^k·ref in [1/2, 1) where ref lies
    outside 2^±:data:`SAFE_BINADE`, else 0 (and 0 where ref = 0): the one rule by which the checks rescale a pair
    exactly (proofs/verification.md, item 11)."""
    _, exp = torch.frexp(ref)
    outside = (ref > 0) & ((ref >= 2.0**SAFE_BINADE) | (ref < 2.0**-SAFE_BINADE))
    return torch.where(outside, -exp, torch.zeros_like(exp))


def _shape_moments(m: Moments, samples: torch.Tensor | None) -> Moments:
    """Moments carrying the same skewness and kurtosis as ``m`` (both are invariant under x ↦ 2ᵏx) but computed from
    ``samples`` rescaled per pair by the exact power of two that brings their largest magnitude into [1/2, 1), when
    some pair's magnitude is outside 2^±SAFE_BINADE (:func:`binade_exponents`): the fourth central moment of draws
    of magnitude 10⁻¹⁰⁰ underflows to 0 in float64, which made the guard NaN and refused a pair that is plainly off
    its target. ``m`` itself otherwise (and without samples)."""
    if samples is None or samples.shape[0] != m.count or m.count == 0:
        return m
    x = samples.detach().to(torch.float64).cpu()
    top = x.abs().amax(0)
    k = binade_exponents(torch.where(torch.isfinite(top), top, torch.zeros_like(top)))
    if not bool((k != 0).any()):
        return m
    return Moments._from_samples(torch.ldexp(x, k))


def squared_deviations(x: torch.Tensor, mean: torch.Tensor, *, total: bool = False) -> tuple[Moments, Moments]:
    """The moments of Y = (x − mean)²·n/(n − 1) (x [n, P] float64; the mean of Y is s²), whose mean the variance
    checks test, and the same Y's moments in a power-of-two unit per pair (:func:`_shape_moments`: the guard and the
    skewness without underflow). ``total``: of the one sum Σ_p Y_p instead (a variance summed over pairs)."""
    n = x.shape[0]
    y = (x - mean) ** 2 * (n / max(n - 1, 1))
    if total:
        y = y.sum(-1, keepdim=True)
    my = Moments._from_samples(y)
    return my, _shape_moments(my, y)


#: The coarser formats whose rounding of a target :func:`_off` names, finest first: float32 alone, where a kernel
#: built from float32 parameters is common and 4ε·|target| (4.8·10⁻⁷ relative) is far below any bias a map is likely
#: to have; float16's and bfloat16's 4ε (0.39 % and 3.1 %) would name a format for maps off by a real per cent.
COARSE_FORMATS = (torch.float32,)


def _off(diff: torch.Tensor, what: str = "mean", target: torch.Tensor | None = None) -> str:
    """The deviation written out, so that a mean and a target that print alike still show their difference. Given the
    ``target`` (by the callers only where every draw gave one estimate and that estimate is off its target beyond the
    rounding floor, so that nothing but its distance to the target is read), a deviation within 4ε·|target| of a
    coarser format that holds the target (:data:`COARSE_FORMATS`, ε its machine epsilon: a few roundings) says so: a
    kernel computed in float32 and returned in float64 misses its exact value by that much, and the draws of a
    correct map, resolved that finely, read it as the map's (a user trial: a Gaussian kernel scaled by float32
    mixture weights summing to 1 − 3·10⁻⁸ had a correct map refused, the message blaming its law)."""
    text = f", {what} − target {float(diff):.3g}"
    if target is None:
        return text
    d, t = abs(float(diff)), abs(float(target))
    if not (math.isfinite(d) and math.isfinite(t)) or d <= 4 * torch.finfo(torch.float64).eps * t:
        return text
    for dtype in COARSE_FORMATS:
        info = torch.finfo(dtype)
        reach = 4 * info.eps * t
        if info.tiny <= t <= info.max and d <= reach:  # a format that holds the target as a normal number
            name = str(dtype).removeprefix("torch.")
            return (f"{text}, within {name}'s rounding of the target (4ε·|target| = {reach:.2g}): a kernel computed in "
                    f"{name} and returned in float64 is that far from its exact value, as are features computed "
                    f"in {name}; compute the kernel in float64 if it is the target meant")
    return text


def _first_bad(values: torch.Tensor, labels) -> str:
    idx = int(torch.nonzero(~torch.isfinite(values))[0])
    return f"{float(values[idx])} at pair {idx}{_label(labels, idx)}"


def _label(labels, idx: int) -> str:
    return f" ({labels[idx]})" if labels is not None and idx < len(labels) else ""


def _pair(labels, idx: int, index: torch.Tensor | None = None) -> str:
    """"N (label)" of the pair at position ``idx`` of the tested pairs; ``index`` maps those positions back to the
    pairs the caller passed (and its ``labels``) when some were set aside before testing."""
    n = idx if index is None else int(index[idx])
    return f"{n}{_label(labels, n)}"


def claim_rounding_sd(scale: torch.Tensor) -> torch.Tensor:
    """√τ, τ = ROUNDING_ULPS · ε(float64) · scale²: how far a claimed variance, a float64 formula whose terms are of
    the order of the squared magnitude ``scale`` of the estimates, may be off by its own rounding (proof item 9).
    Kept as a standard deviation, which cannot overflow where τ would."""
    return math.sqrt(ROUNDING_ULPS * _EPS) * scale.to(torch.float64).cpu()


def claimed_variance(
    variance: torch.Tensor, scale: torch.Tensor, labels=None
) -> tuple[torch.Tensor | None, str]:
    """Validate a claimed per-pair variance: ``(variance, "")`` where it is a valid variance, with values below
    zero by at most the rounding floor of its scale (ROUNDING_ULPS · ε · scale², ``scale`` the magnitude of the
    estimates at that pair) read as 0; ``(None, reason)`` when it is NaN, infinite or clearly negative."""
    v = variance.to(torch.float64).cpu()
    if not bool(torch.isfinite(v).all()):
        return None, f"the claimed variance is {_first_bad(v, labels)}"
    root_tol = claim_rounding_sd(scale)  # compared as square roots: no overflow
    tol = root_tol**2
    negative = (v < 0) & ((-v).sqrt() > root_tol)
    if bool(negative.any()):
        idx = int(torch.nonzero(negative)[0])
        return None, (
            f"the claimed variance {float(v[idx]):.6g} at pair {idx}{_label(labels, idx)} is negative beyond "
            f"float64 rounding (tolerance {float(tol[idx]):.3g})"
        )
    return torch.where(v < 0, torch.zeros_like(v), v), ""


def declared_bound(bound: torch.Tensor | None, labels=None) -> tuple[torch.Tensor | None, str]:
    """Validate a declared per-pair bound B_p (|estimate| ≤ B_p): ``(bound, "")``, ``(None, "")`` when some B_p is
    +inf (no bound: Hoeffding and Maurer–Pontil would be vacuous there, and inf/inf is NaN), or
    ``(None, reason)`` when some B_p is NaN or negative (not a bound at all)."""
    if bound is None:
        return None, ""
    b = bound.to(torch.float64).cpu()
    bad = torch.isnan(b) | (b < 0)
    if bool(bad.any()):
        idx = int(torch.nonzero(bad)[0])
        return None, f"the declared bound is {float(b[idx])} at pair {idx}{_label(labels, idx)}, not a number ≥ 0"
    return (None if bool(torch.isinf(b).any()) else b), ""


def clt_guard(m: Moments, guard: float = GUARD) -> tuple[bool, float]:
    """Whether the normal approximation of the mean can be trusted (worst term ≤ ``guard``), and the worst term."""
    if m.count < MIN_DRAWS:
        return False, math.inf
    with torch.no_grad():  # a pair whose draws agree up to rounding has no tails: its spread is rounding noise
        _, worst = clt_guard_pairs(m, guard)
    w = float(worst.max()) if worst.numel() else 0.0
    return w <= guard, w


def clt_guard_pairs(m: Moments, guard: float = GUARD) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`clt_guard` per pair: (trusted [P] bool, worst term [P])."""
    n = m.count
    if n < MIN_DRAWS:
        return torch.zeros_like(m.mean, dtype=torch.bool), torch.full_like(m.mean, math.inf)
    var = m.population_variance
    degenerate = degenerate_pairs(m)
    kurt = torch.where(degenerate, torch.ones_like(var), m.fourth_central / torch.where(degenerate, 1.0, var) ** 2)
    skew = torch.where(degenerate, torch.zeros_like(var), m.skewness.nan_to_num(0.0))
    worst = torch.maximum(torch.sqrt((kurt - 1).clamp_min(0) / n), skew.abs() / math.sqrt(n))
    return worst <= guard, worst


def degenerate_pairs(m: Moments) -> torch.Tensor:
    """[P] bool: pairs whose draws have no spread beyond rounding at their own scale (population standard deviation
    ≤ ROUNDING_ULPS·ε·|mean|): the guard reads them as tail-free, and :func:`mean_check` with ``atoms`` as draws that
    agree, which a rare event can make (proofs/verification.md, item 3a)."""
    return m.population_variance.sqrt() <= ROUNDING_ULPS * _EPS * m.mean.abs()


def _skewness(m: Moments) -> torch.Tensor:
    return torch.where(m.population_variance > 0, m.skewness.nan_to_num(0.0), torch.zeros_like(m.mean))


def _level(alpha) -> float:
    """The row's level: a real number in (0, 1) (a level of 0 would pass every row; the public entry points also keep
    it above ``MIN_ALPHA`` before splitting it)."""
    return check_real(alpha, "alpha", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)


def _per_pair(value, name: str, pairs: int) -> torch.Tensor | None:
    """``value`` as a [P] float64 CPU tensor: a real number or a real tensor of shape () or [P] (one per pair);
    None stays None. Anything else is an error naming the argument: a complex value (its imaginary part would be
    dropped), a shape that would broadcast against [P] into something else ([P, 1]), a non-numeric type."""
    if value is None:
        return None
    if isinstance(value, np.ndarray | np.generic) and not isinstance(value, np.bool_):
        try:  # numpy numbers and arrays, as torch reads them
            value = torch.from_numpy(np.array(value))
        except TypeError as exc:
            kind = np.asarray(value).dtype
            raise TypeError(f"{name} must be real numbers, got a numpy array of dtype {kind}") from exc
    if isinstance(value, bool) or not isinstance(value, Real | torch.Tensor):
        raise TypeError(f"{name} must be a real number or a tensor of shape [P] = [{pairs}], got "
                        f"{type(value).__name__}")
    t = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value), dtype=torch.float64)
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be real, got a tensor of dtype {t.dtype}")
    if t.shape not in ((), (pairs,)):
        raise ValueError(f"{name} must have one value per pair, shape [P] = [{pairs}] (or be one number), got shape "
                         f"{list(t.shape)}")
    return t.to(torch.float64).cpu().expand(pairs)


def _rounding_floors(atol, pairs: int, labels=None) -> torch.Tensor | None:
    """``atol`` of :func:`mean_check` and :func:`variance_check` as one rounding floor ≥ 0 per pair (:func:`_per_pair`),
    None staying None: a negative floor is an error naming the smallest, and NaN one naming its first pair (it would
    be read further on as a standard error of NaN)."""
    atol = _per_pair(atol, "atol", pairs)
    if atol is not None and bool((atol < 0).any()):
        raise ValueError(f"atol must be a rounding floor ≥ 0 at every pair, got {float(atol.min()):g}")
    if atol is not None and bool(atol.isnan().any()):
        bad = int(torch.nonzero(atol.isnan())[0])
        raise ValueError(f"atol must be a rounding floor ≥ 0 at every pair, got nan at pair {bad}{_label(labels, bad)}")
    return atol


def _checked_draws(m: Moments, samples, what: str = "samples") -> tuple[int, torch.Tensor | None]:
    """(P, samples): the pairs ``m`` summarises and its raw draws, which must be the [n, P] tensor it summarises."""
    if not isinstance(m, Moments):
        raise TypeError(f"m must be the Moments of the draws, got {type(m).__name__}")
    if m.count < 1:
        raise ValueError("m summarises no draws (count 0): a check needs at least one")
    pairs = int(m.mean.numel())
    if m.mean.dim() != 1:
        raise ValueError(f"m must summarise draws of shape [n, P] (its mean of shape [P]), got a mean of shape "
                         f"{list(m.mean.shape)}")
    if samples is None:
        return pairs, None
    if not isinstance(samples, torch.Tensor) or samples.dim() != 2 or tuple(samples.shape) != (m.count, pairs):
        shape = list(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"{what} must be the [n, P] = [{m.count}, {pairs}] draws that m summarises, got {shape}")
    if samples.is_complex():
        raise TypeError(f"{what} must be real, got dtype {samples.dtype}")
    return pairs, samples


def mean_check(
    m: Moments,
    target: torch.Tensor,
    *,
    alpha: float,
    name: str,
    seed: int,
    bound: torch.Tensor | None = None,
    variance: torch.Tensor | None = None,
    samples: torch.Tensor | None = None,
    target_stderr: torch.Tensor | None = None,
    atol: float | torch.Tensor | None = None,
    claim: str = "unbiased",
    labels: list[str] | None = None,
    futility=None,
    carry_without_variance: bool = True,
    atoms: bool = True,
    magnitude: float | torch.Tensor | None = None,
    magnitude_of: str = "",
) -> CheckResult:
    """Test H₀: E[estimate_p] = target_p for every pair p (see the module docstring for the method choice).

    ``bound``: B_p with |estimate| ≤ B_p (enables Hoeffding; an infinite B_p at some pair: no bound, see
    :func:`declared_bound`). ``variance``: the exact per-draw variance σ_p²
    (enables the exact-variance CLT and median of means; the latter needs the raw ``samples`` [n, P]).
    ``target_stderr``: the standard error of a Monte Carlo target drawn independently of the estimates; the
    test is then the two-sample z-test on mean − target with SE² = s²/n + SE_target² (CLT only).
    ``atol``: the rounding floor F (a number or one per pair). A pair whose draws agree up to rounding (their spread
    ≤ 2F; with no ``samples``, a standard error of 0) and whose target is exact (no ``target_stderr`` there) passes
    iff |mean − target| ≤ F; every other pair is tested at its distance (|mean − target| − F)₊ from the interval
    [target − F, target + F] (proofs/verification.md, item 9). By default F is
    :func:`pair_rounding_floor` of the target, the mean and the samples: per pair, never from the largest pair, in
    float64 (pass ``atol`` for estimates from features of a coarser dtype). A standard error that is not a finite
    float64 at some pair refuses the row.
    ``labels``: a name per pair, used in the detail line.
    ``futility``: at an early look of a sequential check, a :class:`~kerneltheory.testing.sequential.Futility`;
    a passing row decided by the normal approximation is then marked ``accepted_early`` when its draws exclude
    every effect the last look detects with the declared power
    (:func:`~kerneltheory.testing.pvalues.excludes_detectable_effects`).
    The effect size is the largest |mean − target| / max(|target|, σ) over the pairs.

    A claimed ``variance`` is part of the hypothesis tested (E = target *and* Var = variance): an inflated one makes
    the test lenient. The row therefore carries in ``without_variance`` the same test without it (studentised under
    H₀); :func:`~kerneltheory.testing.reliance.settle_on_variance` decides by that one unless the variance claim
    is confirmed in the same run. ``carry_without_variance=False`` skips it, for a variance that is a proven fact
    (``variance_known`` in :func:`~kerneltheory.testing.verify.run_mean_variance_checks`), where nothing settles.

    ``atoms``: whether the estimate's law may put an atom off its target (a value taken with positive probability:
    sparse, binning or dropout features, a discrete law). Then a pair whose draws have no spread at their own scale
    (:func:`degenerate_pairs`), off its target, is evidence only through a claimed variance with an exact target
    (Cantelli: 2(σ²/(σ² + d²))ⁿ at distance d) or a declared bound; otherwise it is untested: it never rejects, and a
    row that does not reject elsewhere is refused, naming it, where its normal test would have rejected it (a rare
    event leaves every draw on one value with probability near 1). ``atoms=False`` declares that no such atom exists
    (a continuous law, a deterministic map): agreement off the target is then a bias (proofs/verification.md, item
    3a).

    A pass must resolve something (proofs/verification.md, item 3(b)): it is refused where no pair's test rejects a
    deviation as large as the magnitude it must resolve, |target_p|, or where the target is 0 the row's largest target
    above its own floor. ``magnitude`` (a number or one per pair, finite and > 0) replaces that fallback where a row's
    targets are 0 by construction (a difference of two estimates of one quantity, whose size is elsewhere);
    ``magnitude_of`` names it in the refusal (e.g. "ĉ, the mean ratio"). Given a magnitude, the row also applies the
    rounding floor's rule (:func:`unresolved_pairs`) to its pairs itself, against what each must resolve, so the
    caller does not.
    """
    pairs, samples = _checked_draws(m, samples)
    target, variance, bound, target_stderr = (_per_pair(v, k, pairs) for v, k in (
        (target, "target"), (variance, "variance"), (bound, "bound"), (target_stderr, "target_stderr")))
    if target is None:
        raise TypeError("target must be a real number or a tensor of shape [P], got None")
    atol = _rounding_floors(atol, pairs, labels)
    magnitude = _per_pair(magnitude, "magnitude", pairs)
    if magnitude is not None and not bool((torch.isfinite(magnitude) & (magnitude > 0)).all()):
        bad = int(torch.nonzero(~(torch.isfinite(magnitude) & (magnitude > 0)))[0])
        raise ValueError(f"magnitude must be finite and > 0 at every pair, got {float(magnitude[bad]):g} at pair "
                         f"{bad}{_label(labels, bad)}")
    if magnitude is not None and not (isinstance(magnitude_of, str) and magnitude_of):
        raise ValueError("magnitude_of must name the magnitude (a non-empty str) where magnitude is given")
    if magnitude is None and magnitude_of:
        raise ValueError(f"magnitude_of={magnitude_of!r} names a magnitude, but magnitude is None: give both or "
                         "neither")
    args = dict(alpha=_level(alpha), name=name, seed=seed, bound=bound, samples=samples,
                target_stderr=target_stderr, atol=atol, claim=claim, labels=labels, futility=futility,
                atoms=check_flag(atoms, "atoms"), magnitude=(magnitude, magnitude_of))
    row = _mean_test(m, target, variance, args)
    if variance is not None and carry_without_variance:
        row.without_variance = _mean_test(m, target, None, args)
    return row


def _mean_test(m: Moments, target: torch.Tensor, variance: torch.Tensor | None, kw: dict) -> CheckResult:
    """The test of :func:`mean_check` with the given ``variance`` taken as exact (None: studentised under H₀)."""
    alpha, name, seed, claim, labels, atoms = (kw[k] for k in ("alpha", "name", "seed", "claim", "labels", "atoms"))
    bound, samples, target_stderr, atol, futility, magnitude = (kw[k] for k in (
        "bound", "samples", "target_stderr", "atol", "futility", "magnitude"))
    n = m.count
    target = target.to(torch.float64).cpu()
    base = dict(name=name, claim=claim, alpha=alpha, sample_size=n, seed=seed)
    if not bool(torch.isfinite(target).all()):
        return CheckResult.invalid_claim(f"the claimed target is {_first_bad(target, labels)}", **base)
    if target_stderr is not None:
        target_stderr = target_stderr.to(torch.float64).cpu()
        if not bool(torch.isfinite(target_stderr).all()) or bool((target_stderr < 0).any()):
            return CheckResult.invalid_claim("the reference's standard error is not a finite number ≥ 0", **base)
    bound, why = declared_bound(bound, labels)
    if why:
        return CheckResult.invalid_claim(why, **base)
    if atol is None:
        atol = pair_rounding_floor(target, m.mean, *([] if samples is None else [samples]))
    atol = torch.as_tensor(atol, dtype=torch.float64).expand_as(target)
    if variance is not None:
        scale = torch.maximum(target.abs(), m.mean.abs())
        if samples is not None:
            scale = torch.maximum(scale, samples.detach().to(torch.float64).cpu().abs().amax(0))
        variance, why = claimed_variance(variance, scale, labels)
        if variance is None:
            return CheckResult.invalid_claim(why, **base)
        # the claim is known to ±τ (its own rounding): the test takes the largest variance it admits
        variance = torch.hypot(variance.sqrt(), claim_rounding_sd(scale)) ** 2
    diff = m.mean - target
    # each estimate carries a rounding error |e| ≤ atol, so under H₀ the mean of what is measured lies within atol
    # of the target: the distance to [target − atol, target + atol] is tested (proof item 9)
    near = torch.sign(diff) * (diff.abs() - atol).clamp_min(0.0)
    sd = torch.sqrt(m.population_variance if variance is None else variance)
    scale = torch.maximum(target.abs(), sd)
    effect = float((diff.abs() / torch.where(scale > 0, scale, torch.ones_like(scale))).max())
    base["effect_size"] = effect
    shape = _shape_moments(m, samples)  # guard and skewness: scale-free, from moments that cannot underflow
    ok, worst = clt_guard(shape)
    # with a claimed variance: exact; without: studentised under H₀ (score form, V₀ = s_pop² + diff²), computed as
    # hypot(s_pop, diff)/√n, which overflows only where the standard error itself is not representable
    se = (torch.hypot(sd, near) if variance is None else sd) / math.sqrt(n)
    own_se = se  # the estimates' own part, beside the reference's
    if target_stderr is not None:
        se = torch.hypot(se, target_stderr)
    if not bool(torch.isfinite(se).all()):
        return _unrepresentable(se, "standard error of the mean", base, labels)
    # draws equal up to rounding (their spread within twice the floor): compare the mean with the floor instead
    if samples is not None:
        x = samples.detach().to(torch.float64).cpu()
        spread = x.amax(0) - x.amin(0)
        zero = spread <= 2 * atol
    else:
        spread, zero = None, se == 0
    if target_stderr is not None:  # a Monte Carlo target is known only to its own error: the two-sample z-test decides
        zero = zero & (target_stderr.to(zero.device) == 0)
    # draws with no spread at their own scale (the guard's degenerate pairs, which it reads as tail-free), off their
    # target: where the law may have an atom, one value except on a rare event puts every draw there with probability
    # near 1, so they are evidence only through a claimed variance with an exact target (Cantelli) or a declared
    # bound, else untested (proof item 3a); without atoms, agreement within the floor off the target is a bias (z = ∞)
    rare = _agreeing(shape, samples, target, m.mean, atol) & (near != 0) if atoms else torch.zeros_like(zero)
    cantelli = rare & (variance is not None)
    if target_stderr is not None:
        cantelli = cantelli & (target_stderr == 0)
    markov = rare & (bound is not None and target_stderr is None)
    untested = rare & ~cantelli & ~markov  # they can only pass or refuse
    p_agree = _agreeing_p_values(cantelli, markov, samples, target, atol, near, variance, bound, n)
    exact = zero if not atoms else zero & (near == 0)  # compared with the floor, not by a normal test
    halves = 2 if bound is not None and target_stderr is None else 1
    skew = _skewness(shape)  # read by the floor, the p-values and the early look
    floor = p_value_floor(skew, n, studentised=variance is None) * target.numel() * halves
    # the normal test could not reject a pair, however far off
    blind = ok and bool(((floor > alpha) & ~exact & ~rare).any())
    ok = ok and not blind
    z = None
    if ok:
        z = torch.where(
            exact | (se == 0),
            torch.where(near != 0, math.inf, 0.0),
            near / torch.where(se > 0, se, torch.ones_like(se)),
        )
        p_clt = normal_p_values(z, skew, n, studentised=variance is None)
        if bool(rare.any()):  # Cantelli's or Markov's exact p-values, and the normal |z| that gives each (for the row)
            tested = rare & ~untested
            p_clt = torch.where(tested, p_agree, torch.where(untested, 1.0, p_clt))
            z = torch.where(tested, torch.sign(near) * _normal_equivalent(p_agree), z)

    # an agreeing pair off its target never supports a pass: untested, or tested by an exact bound (Cantelli, Markov)
    # that did not reject it, which resolves only deviations far beyond the draws' own (a declared bound of 100 let
    # every draw at 1.05 pass against a target of 1). The row is refused where such a pair's normal p-value, read as if
    # its draws were exact (no skewness factor, so as to refuse more, never less), would have rejected it
    unsupported = untested | (rare & ~untested & (p_agree * target.numel() * halves > alpha))
    would = unsupported & exact_reading_rejects(near, se, target.numel() * halves, alpha) if bool(
        unsupported.any()) else unsupported

    settled_pairs = exact & (near == 0)  # draws that meet the target within the floor: decided, not by noise
    # where the reference's standard error is the larger part, more draws of the estimates do not resolve a pair
    reference_error = None if target_stderr is None else target_stderr >= own_se

    def resolution_refusal(row: CheckResult, reaches) -> CheckResult:
        return _resolution(row, reaches, target, atol, settled_pairs, labels, base, reference_error, magnitude)

    def agreeing_refusal(row: CheckResult) -> CheckResult:
        """The row, or its refusal where it passes and an agreeing pair off its target does not support the pass."""
        if not row.passed or not bool(would.any()):
            return row
        first = int(torch.nonzero(would)[0])
        which = "the claimed variance (Cantelli)" if bool(cantelli[first]) else "the declared bound (Markov)"
        exact_test = ("" if bool(untested[first]) else
                      f"; the exact test of {which} gives p = {float(p_agree[first]):.3g} there, which resolves only "
                      "deviations far beyond this one at these draws")
        return CheckResult.refusal(
            f"{int(would.sum())} of {would.numel()} pairs are untested: at pair {first}"
            f"{_label(labels, first)} every one of the {n} draws gave {float(m.mean[first]):.6g} (up to rounding), "
            f"target {float(target[first]):.6g}{_off(diff[first], target=target[first])}; a map that does not draw "
            "from its generator "
            "(every draw the same map) does that, and so does an unbiased estimate that is one value except on a "
            "rare event (sparse or binning features), so agreement is no evidence against the claim without a "
            f"claimed variance (and an exact target) or a declared bound that rejects it{exact_test}; the tested "
            "pairs agree with the claim",
            **base,
        )

    def early(row: CheckResult, halves: int) -> CheckResult:
        if futility is None or not row.passed:
            return row
        final_var = m.population_variance if variance is None else variance
        final_se = torch.sqrt(final_var / futility.final_draws + (0.0 if target_stderr is None else target_stderr**2))
        if excludes_detectable_effects(near, se, final_se, skew, futility, pairs=target.numel(),
                                       halves=halves, studentised=variance is None, settled=zero & (near == 0)):
            _mark_early(row, futility)
        return row
    if bound is not None and target_stderr is None:
        b = bound.to(torch.float64).cpu()
        outside = samples is not None and bool((samples.abs().cpu() > b * (1 + 1e-9)).any())
        if outside or bool((m.mean.abs() > b * (1 + 1e-9)).any()):
            return CheckResult.certain_failure("bounded", "an estimate lies outside its declared bound", **base)
        p = bounded_p_values(near, b, m.variance if n > 1 else torch.zeros_like(b), n)
        method = "bounded"
        if ok:  # both are valid p-values: Bonferroni over the two keeps the CLT's power where the bound is loose
            p, method = (2 * torch.minimum(p, p_clt)).clamp(max=1.0), "bounded + clt"
        elif bool(rare.any()):  # the agreeing pairs' exact bounds beside Hoeffding and Bernstein (Bonferroni)
            p = torch.where(rare, (2 * torch.minimum(p, p_agree)).clamp(max=1.0), p)
        p_adj, idx = _bonferroni(p)
        if math.isnan(p_adj):
            return _not_a_probability(p, idx, method, base, labels)
        stat = float(diff[idx].abs() / b[idx]) if float(b[idx]) > 0 else 0.0
        row = CheckResult(
            statistic=stat,
            p_value=p_adj,
            method=method,
            passed=p_adj > alpha,
            detail=f"worst pair {idx}{_label(labels, idx)}: mean {float(m.mean[idx]):.6g}, "
            f"target {float(target[idx]):.6g}{_off(diff[idx])}",
            pair_p=p,
            **base,
        )
        spread = m.variance if n > 1 else torch.zeros_like(b)
        share = target.numel() * (2 if ok else 1)  # Bonferroni: over the pairs, and the two tests where both run
        row = agreeing_refusal(row)
        if row.passed and ok:  # the smaller reach of the two tests; the bound's only where the normal one is blind
            row = resolution_refusal(row, [lambda: _normal_reach(se, alpha, share) + atol,
                                           lambda: bounded_reach(b, target, spread, n, alpha / share) + atol])
        elif row.passed:
            detect = bounded_reach(b, target, spread, n, alpha / share)
            row = resolution_refusal(row, [lambda: detect + atol])
        if row.passed and not ok:
            # the bound alone decides: a pair that it could not reject however far off (few draws) is untested (a pair
            # with B + |K| = 0 cannot deviate at all: every estimate is its target)
            room = b + target.abs()
            blind_here = torch.isinf(detect) & (room > 0)
            if bool(blind_here.any()):
                first = int(torch.nonzero(blind_here)[0])
                need = math.ceil(2 * math.log(4 * share / alpha) * float(b[first] / room[first]) ** 2)
                return CheckResult.refusal(
                    f"the declared bound cannot reject pair {first}{_label(labels, first)} at level {alpha:.3g} with "
                    f"{n} draws however far off its mean is (even at the largest deviation the bound allows, "
                    f"{float(room[first]):.3g}), and the normal test does not apply (it needs {MIN_DRAWS} draws and "
                    f"light tails); Hoeffding's test reaches the level from about {need} draws",
                    no_evidence=True, **base)
        return early(row, 2) if ok else row  # a bound alone has no normal power to protect: it runs to the end
    if ok:
        p_adj, idx = _bonferroni(p_clt)
        method = "clt (exact variance)" if variance is not None else "clt"
        if math.isnan(p_adj):
            return _not_a_probability(p_clt, idx, method, base, labels)
        return early(resolution_refusal(agreeing_refusal(CheckResult(
            statistic=float(z[idx]),
            p_value=p_adj,
            method=method,
            passed=p_adj > alpha,
            detail=f"worst pair {idx}{_label(labels, idx)}: mean {float(m.mean[idx]):.6g}"
            + (" (every draw gave this estimate; under the claimed variance, whatever the law, so many draws so far "
               f"off the target have probability ≤ {float(p_agree[idx]):.3g}: Cantelli)"
               if bool(cantelli[idx]) else
               " (every draw gave this estimate: a deterministic map, a sampler that reseeds itself, or a pair where "
               "the estimate does not depend on the frequencies, as positive features' at x = 0; its distance to the "
               "target, beyond the rounding allowed, is then a bias there)"
               if bool(exact[idx] & (near[idx] != 0)) else
               (" (every draw gave this estimate)" if spread is None or float(spread[idx]) == 0 else
                f" (every draw within the rounding floor {float(atol[idx]):.3g} of this estimate)")
               if bool(zero[idx] & (near[idx] == 0)) else
               _plus_minus(se[idx], sd[idx] / math.sqrt(n), variance is None and target_stderr is None))
            + f", target {float(target[idx]):.6g}"
            + _off(diff[idx], target=target[idx] if bool(zero[idx] & (near[idx] != 0)) else None),
            pair_p=p_clt,
            **base,
        )), [lambda: _normal_reach(se, alpha, target.numel()) + atol]), 1)
    if variance is not None and samples is not None and target_stderr is None:
        return _median_of_means(samples, target, variance, base, labels, atol, settled_pairs, magnitude)
    return CheckResult.refusal(
        (f"the skewness is too large for a normal test at level {alpha:.3g} with {n} draws (no deviation at pair "
         f"{int(torch.argmax(torch.where(zero, 0.0, floor)))} could reach it)" if blind else
         f"too few draws ({n} < {MIN_DRAWS}) for the normal approximation" if n < MIN_DRAWS else
         "the moments of the estimates are not representable in float64 (the guard's fourth moment is "
         f"{worst}), so no normal test applies" if not math.isfinite(worst) else
         f"tails too heavy for {n} draws (guard {worst:.3g} > {GUARD})") + " and no exact variance",
        no_evidence=True, **base,
    )


def _normal_reach(se: torch.Tensor, alpha: float, share: int) -> torch.Tensor:
    """Per pair, the deviation the normal test detects with accepting early's power at level ``alpha``/``share``
    (:func:`~kerneltheory.testing.pvalues.detectable_effect`; the skewness factor is left out, so it understates what
    the test needs)."""
    return detectable_effect(se, alpha / share, power_z())


def _resolution(row: CheckResult, reaches, target: torch.Tensor, atol: torch.Tensor, settled: torch.Tensor, labels,
                base: dict, reference_error: torch.Tensor | None,
                magnitude: tuple[torch.Tensor | None, str] = (None, "")) -> CheckResult:
    """A passing mean row, or its refusal where no pair resolves an effect as large as its target
    (proofs/verification.md, item 3(b)). ``reaches``: callables, each giving per pair the distance from the target
    that one deciding test rejects (with power 0.9 for the normal test), rounding floor ``atol`` included; ``detect``
    is their minimum (tests combined by Bonferroni), computed only for a pass and only as far as a pair is blind under
    the ones read so far. A pair is blind where it is not
    ``settled`` (draws that meet the target within a floor below half of it) and its floor is not finite, or its floor
    reaches half of a nonzero target, or ``detect`` reaches the magnitude it must resolve: |K_p|, or where K_p = 0 the
    row's largest |K| (a polynomial kernel's orthogonal pairs against its others), or the caller's ``magnitude`` (a
    [P] tensor or None, and the words naming it) where one is given: a row whose targets are all 0, a difference of
    two estimates of one quantity, has no magnitude of its own. Every pair blind: refused (the floor's own refusal,
    :func:`unresolved_pairs`, where the floor alone is why); some: the pass names them, as pairs left out of it (they
    stay tested: a rejection there still fails). ``reference_error``: [P] bool, where a Monte Carlo reference's
    standard error is the larger part (None: an exact target), which the refusal's advice reads. Failures and
    refusals are returned unchanged."""
    if not row.passed:
        return row
    k = target.abs()
    finite = torch.isfinite(atol)
    # a zero target is measured against the row's largest target that stands above its own floor (a residue of
    # exact-arithmetic zeros, 1e-32 beside 0, is no magnitude); a row with none has no magnitude to resolve
    given, named = magnitude
    if given is None:
        above = torch.where(finite & (k > atol), k, torch.zeros_like(k))
        given = torch.full_like(k, float(above.max()) if k.numel() else 0.0)
    scale = torch.where(k > 0, k, given.to(k))
    floor_blind = (scale > 0) & (atol >= UNRESOLVED_SHARE * scale)
    detect = None
    for reach in reaches:
        detect = reach() if detect is None else torch.minimum(detect, reach())
        noise_blind = (scale > 0) & ~(detect < scale)
        blind = (~finite | floor_blind | noise_blind) & ~(settled & finite & ~floor_blind)  # floor < ½ of the scale
        if not bool(blind.any()):
            return row
    # pairs whose floor alone hides the magnitude are named by the floor rule (unresolved_pairs): the callers apply it
    # to nonzero targets; where the caller gave a magnitude, it is applied here to every pair, against the magnitude
    # each must resolve (a floor that is not finite among them: unresolved_pairs names it too)
    by_floor = (~finite | floor_blind) if named else (finite & floor_blind & (k > 0))
    against = (named if not bool((k > 0).any()) else f"the target ({named} where it is 0)") if named else ""

    def floor_rule(r: CheckResult) -> CheckResult:
        if not named:
            return unresolved_pairs(r, atol, target, labels)
        return unresolved_pairs(r, atol, scale, labels, zero=torch.zeros_like(by_floor), what=against)

    if bool(blind.all()) and bool(by_floor.all()):
        return floor_rule(row)  # the floor alone: the refusal the callers give it too
    rest = blind & ~by_floor  # counted once: the floor rule names the others
    ratio = torch.where(scale > 0, detect / torch.where(scale > 0, scale, 1.0), math.inf)
    idx = int(torch.argmax(torch.where(rest if bool(rest.any()) else blind, ratio.nan_to_num(math.inf), -math.inf)))
    what = ("its target" if bool(k[idx] > 0) else "that magnitude" if named else
            "the row's largest target (its own is 0)")
    worst = (f"pair {idx}{_label(labels, idx)}: the test rejects only deviations ≥ {float(detect[idx]):.3g} (rounding "
             f"floor {float(atol[idx]):.3g} included) against {what}, {float(scale[idx]):.3g}")
    if not bool(blind.all()):
        if bool(rest.any()):
            size = f"their target ({named} where it is 0)" if named else "their target"
            row.detail = (f"{int(rest.sum())} of {blind.numel()} pairs {LEFT_OUT}, their test resolving no effect as "
                          f"large as {size} (worst {worst}); " + row.detail)
        return floor_rule(row) if named else row
    noisy_reference = reference_error is not None and bool(reference_error[idx])
    fix = ("a reference known more precisely resolves it: its standard error is the larger part" if noisy_reference
           else "more draws, or inputs where the estimates' noise is below the kernel, resolve it")
    whole = f"{named} where its target is 0" if named else "its target"
    return CheckResult.refusal(
        f"no pair resolves an effect as large as {whole} (worst {worst}), so a map off by that much would pass as "
        f"well ({fix}); " + row.detail, no_evidence=True, **base)


def _agreeing(shape: Moments, samples: torch.Tensor | None, target: torch.Tensor, mean: torch.Tensor,
              atol: torch.Tensor) -> torch.Tensor:
    """[P] bool: pairs whose draws have no spread at their own scale: the guard's :func:`degenerate_pairs`, or a
    spread within twice the floor ``atol`` scaled down from the pair's largest magnitude max(|target|, |mean|, max|x|)
    to the draws' own max|x| (the floor is proportional to the magnitude it is read from, and carries the features'
    precision: float32 rounding of one value is no spread)."""
    if samples is None:
        return degenerate_pairs(shape)
    x = samples.detach().to(torch.float64).cpu()
    top = x.abs().amax(0)
    scale = torch.maximum(torch.maximum(target.abs(), mean.abs()), top)
    return agreeing_pairs(x, atol * top / torch.where(scale > 0, scale, torch.ones_like(scale)), shape)


def _agreeing_p_values(cantelli: torch.Tensor, markov: torch.Tensor, samples: torch.Tensor | None,
                       target: torch.Tensor, atol: torch.Tensor, near: torch.Tensor, variance: torch.Tensor | None,
                       bound: torch.Tensor | None, n: int) -> torch.Tensor:
    """Per pair, a valid p-value for n draws that all lie at distance ≥ d on one side of the target: Cantelli's where
    ``cantelli``, Markov's where ``markov``, both (Bonferroni) where both, 1 elsewhere.

    With every draw's exact value within ``atol`` of what is measured, all n measured draws at least d + atol above
    the target mean every exact draw at least d above it. Under E = target and Var ≤ σ² (the claimed ``variance``),
    Cantelli's inequality gives P(X − target ≥ d) ≤ σ²/(σ² + d²) for one draw (below alike); under E = target and
    |X| ≤ B (the declared ``bound``), Markov's inequality for B ∓ X ≥ 0 gives P(X ≤ target − d) ≤ (B − K)/(B − K + d)
    and P(X ≥ K + d) ≤ (B + K)/(B + K + d), both ≤ q = (B + |K|)/(B + |K| + d). The n independent draws do it on one
    side with probability ≤ qⁿ, on either ≤ 2qⁿ. Without either claim nothing bounds that probability (a law with
    mass 1 − ε at one value and a huge rare value keeps any mean).
    """
    p = torch.ones_like(near)
    if not bool((cantelli | markov).any()):
        return p
    if samples is not None:
        x = samples.detach().to(torch.float64).cpu()
        d = torch.maximum(x.amin(0) - atol - target, target - x.amax(0) - atol).clamp_min(0.0)
    else:
        d = near.abs()

    def two_sided(log_q: torch.Tensor) -> torch.Tensor:  # 2qⁿ from log q, never above 1
        return torch.exp((math.log(2.0) + n * log_q).clamp(max=0.0))

    if variance is not None:
        sd = variance.sqrt()
        ratio = d / torch.where(sd > 0, sd, torch.ones_like(sd))
        p_c = torch.where(sd > 0, two_sided(-torch.log1p(ratio * ratio)), torch.where(d > 0, 0.0, 1.0))
        p = torch.where(cantelli, p_c, p)
    if bound is not None:
        room = bound.to(torch.float64).cpu() + target.abs()
        p_m = torch.where(room > 0, two_sided(-torch.log1p(d / torch.where(room > 0, room, torch.ones_like(room)))),
                          torch.where(d > 0, 0.0, 1.0))
        p = torch.where(markov, torch.where(cantelli, (2 * torch.minimum(p, p_m)).clamp(max=1.0), p_m), p)
    return p


def _normal_equivalent(p: torch.Tensor) -> torch.Tensor:
    """The |z| whose two-sided normal p-value is ``p`` (∞ at p = 0), for a row's statistic."""
    log_half = torch.log(p.clamp(max=1.0)) - math.log(2.0)
    return torch.from_numpy(-ndtri_exp(log_half.numpy())).to(p.dtype).clamp_min(0.0)


def _median_of_means(samples: torch.Tensor, target, variance, base, labels, atol, settled, magnitude) -> CheckResult:
    x = samples.to(torch.float64).cpu()
    n = x.shape[0]
    if n < 3:
        return CheckResult.refusal(f"too few draws ({n}) for a median of means (at least 3) and too few for the normal "
                                   f"approximation ({MIN_DRAWS})", no_evidence=True, **base)
    k = max(3, min(64, n // 32))
    b = n // k
    block_means = x[: k * b].reshape(k, b, -1).mean(1)
    med = block_means.median(0).values
    t = ((med - target).abs() - atol).clamp_min(0.0)  # the distance to the target's rounding interval
    q = (variance / (b * torch.where(t > 0, t, torch.ones_like(t)) ** 2)).clamp(max=1.0)
    need = math.ceil(k / 2)
    p = torch.from_numpy(stats.binom.sf(need - 1, k, q.numpy()))
    p = torch.where(t > 0, p, torch.ones_like(p))
    p_adj, idx = _bonferroni(p)
    base = dict(base, sample_size=k * b)
    if math.isnan(p_adj):
        return _not_a_probability(p, idx, f"median of {k} means", base, labels)
    def reach() -> torch.Tensor:  # the distance it rejects: q = σ²/(b t²) must fall to the q* at which
        # P(Binomial(k, q*) ≥ ⌈k/2⌉) = I_{q*}(⌈k/2⌉, k − ⌈k/2⌉ + 1) = α/P (read only for a pass)
        q_star = float(special.betaincinv(need, k - need + 1, base["alpha"] / p.numel()))
        return torch.sqrt(variance / (b * q_star)) + atol if q_star > 0 else torch.full_like(t, math.inf)

    return _resolution(CheckResult(
        statistic=float(t[idx] / torch.sqrt(variance[idx] / b)) if float(variance[idx]) > 0 else math.inf,
        p_value=p_adj,
        method=f"median of {k} means",
        passed=p_adj > base["alpha"],
        detail=f"worst pair {idx}{_label(labels, idx)}: median {float(med[idx]):.6g}, target {float(target[idx]):.6g}"
        f"{_off(med[idx] - target[idx], 'median')}",
        **base,
    ), [reach], target, atol, settled, labels, base, None, magnitude)


def variance_check(
    m: Moments,
    claimed: torch.Tensor,
    *,
    alpha: float,
    name: str,
    seed: int,
    samples: torch.Tensor,
    bound: torch.Tensor | None = None,
    atol: float | torch.Tensor | None = None,
    labels: list[str] | None = None,
    futility=None,
) -> CheckResult:
    """Test H₀: Var(estimate_p) = claimed_p for every pair p (see the module docstring).

    ``samples`` [n, P] are the draws ``m`` summarises. ``bound``: B_p with |estimate| ≤ B_p
    (:func:`declared_bound`), which adds the exact Maurer–Pontil test. A claimed variance of 0 (a deterministic
    estimate, or within rounding of 0) passes exactly where every draw of that pair agrees up to the pair's rounding
    floor; where the draws vary, the claim (known to ±τ, :func:`claim_rounding_sd`) says Var ≤ τ, tested by the CLT
    of s² and an exact Chebyshev bound on the spread (proofs/verification.md, items 5 and 9). ``futility``: as for
    :func:`mean_check`; only a row whose every pair passed the guard (a normal test) may accept early.
    """
    n = m.count
    pairs, samples = _checked_draws(m, samples)
    if samples is None:
        raise ValueError(f"samples must be the [n, P] draws that m summarises (n = {n}), got None")
    claimed, bound = _per_pair(claimed, "claimed", pairs), _per_pair(bound, "bound", pairs)
    if claimed is None:
        raise TypeError("claimed must be a real number or a tensor of shape [P], got None")
    atol = _rounding_floors(atol, pairs, labels)
    alpha = _level(alpha)
    x = samples.detach().to(torch.float64).cpu()
    base = dict(name=name, claim="variance", alpha=alpha, sample_size=n, seed=seed)
    scale = x.abs().amax(0)
    claimed, why = claimed_variance(claimed, scale, labels)
    if claimed is None:
        return CheckResult.invalid_claim(why, **base)
    bound, why = declared_bound(bound, labels)
    if why:
        return CheckResult.invalid_claim(why, **base)
    if atol is None:
        atol = pair_rounding_floor(x)
    atol = torch.as_tensor(atol, dtype=torch.float64).expand_as(claimed)
    # the claim is a float64 formula, known to ±τ, τ = ROUNDING_ULPS·ε·scale² (the tolerance claimed_variance gives
    # negative claims), kept as its square root √τ, which cannot overflow (proof item 9)
    root_tau = claim_rounding_sd(scale)
    spread = x.amax(0) - x.amin(0)
    # a deterministic claim (0, or within its own rounding τ of 0, as a claim of 0 from another association of the same
    # formula is) that the draws meet up to rounding; a claim 2e-18 above 0 at draws that all gave 1 was refused, while
    # one 2e-18 below passed (read as 0 by claimed_variance)
    settled = (claimed.sqrt() <= root_tau) & (spread <= 2 * atol)
    if bool(settled.all()):
        return property_check(0, int(settled.numel()), claim="variance", name=name, seed=seed, alpha=alpha)
    index = None
    if bool(settled.any()):
        keep = ~settled
        x, claimed, m, atol = x[:, keep], claimed[keep], m.select(keep), atol[keep]
        root_tau, spread = root_tau[keep], spread[keep]
        index = torch.nonzero(keep).flatten()  # messages name the caller's pairs, not positions among the kept ones
        bound = None if bound is None else bound.to(torch.float64).cpu()[keep]
    zero = claimed == 0  # claimed deterministic, yet the draws vary beyond rounding
    s2 = m.variance
    unit = torch.where(zero, root_tau**2, claimed)  # a deviation from a claim of 0 is measured in units of τ
    unit = torch.where(unit > 0, unit, torch.ones_like(unit))
    effect = float(((s2 - claimed).abs() / unit).max())
    base["effect_size"] = effect
    my, shape = squared_deviations(x, x.mean(0))
    guarded, worst = clt_guard_pairs(shape, VARIANCE_GUARD)
    # a pair that the normal test could not reject however far off (skewness too large for the level) is untested
    skew = _skewness(shape)
    floor_p = p_value_floor(skew, n, studentised=True) * claimed.numel() * (1 if bound is None else 2)
    ok = guarded & (floor_p <= alpha)
    # Var of the exact estimates lies in [σ² − τ, σ² + τ]; each estimate carries a rounding error |e| ≤ atol, so the
    # standard deviation of what is measured lies in [(√(σ² − τ)₊ − atol)₊, √(σ² + τ) + atol] under H₀ (Minkowski);
    # the distance of s² to the squared interval is tested (proof item 9)
    sd = claimed.sqrt()
    ratio = root_tau / torch.where(sd > 0, sd, torch.ones_like(sd))
    sd_lo = torch.where(root_tau < sd, sd * torch.sqrt((1 - ratio) * (1 + ratio)), torch.zeros_like(sd))
    sd_hi = torch.hypot(sd, root_tau)
    lo, hi = (sd_lo - atol).clamp_min(0.0) ** 2, (sd_hi + atol) ** 2
    # every draw equal (up to rounding) while the claim is a variance that rounding cannot hide: a law with nearly all
    # of its mass on one value gives that, and no moment of these draws says how rare the rest is (a rare-event pair of
    # binning features failed with s² = 0 against 6.4e-5), so the normal test is not used there
    constant = (spread <= 2 * atol) & (lo > 0)
    ok = ok & ~constant
    diff = my.mean - torch.minimum(torch.maximum(my.mean, lo), hi)
    se = torch.hypot(my.population_variance.sqrt(), diff) / math.sqrt(n)  # studentised under H₀, without overflow
    if not bool(torch.isfinite(se).all()):
        return _unrepresentable(se, "standard error of s²", base, labels, index)
    z = diff / torch.where(se > 0, se, torch.ones_like(se))
    z = torch.where(se > 0, z, torch.where(diff.abs() > 0, math.inf, 0.0))
    p_clt = torch.where(ok, normal_p_values(z, skew, n, studentised=True), torch.ones_like(z))
    tested = ok.clone()
    if bound is not None:
        b = bound.to(torch.float64).cpu()
        if bool((x.abs() > b * (1 + 1e-9)).any()):
            return CheckResult.certain_failure("bounded", "an estimate lies outside its declared bound", **base)
        s = s2.sqrt()
        t = (s - torch.minimum(torch.maximum(s, sd_lo - atol), sd_hi + atol)).abs() / (
            2 * torch.where(b > 0, b, torch.ones_like(b)))
        p_exact = (2 * torch.exp(-(t**2) * (n - 1) / 2)).clamp(max=1.0)
        p = torch.where(ok, (2 * torch.minimum(p_clt, p_exact)).clamp(max=1.0), p_exact)
        # Maurer–Pontil rejects a standard deviation off the claim's interval by ≥ 2B·t*, t* = √(2 ln(2P/α)/(n − 1)):
        # a pair the normal test does not take is tested by it only where it rejects, or where that reach is below the
        # claimed standard deviation itself (it can tell σ from 0) and the draws vary; agreeing draws off a positive
        # claim are evidence only where it rejects (a bound of 1 passed all-equal draws against σ = 0.19, and a loose
        # bound a heavy-tailed pair's claim 4.7 times too small)
        reach = 2 * b * math.sqrt(2 * math.log(2 * claimed.numel() / alpha) / max(n - 1, 1)) + atol
        tested = ok | (p_exact * claimed.numel() <= alpha) | (~constant & (reach < sd))
        method = "clt of s² + Maurer–Pontil"
    else:
        p, method = p_clt, "clt of s²"
    if bool(zero.any()):
        # exact for a deterministic claim, whatever the tails: with Var ≤ τ, P(max_r |X_r − μ| > t) ≤ nτ/t²
        # (Chebyshev and a union bound), and the spread exceeds 2t + 2·atol only if that happens
        t = ((spread - 2 * atol) / 2).clamp_min(0.0)
        p_cheb = torch.where(t > 0, (n * (root_tau / torch.where(t > 0, t, torch.ones_like(t))) ** 2).clamp(max=1.0),
                             torch.ones_like(t))
        p = torch.where(zero, torch.where(tested, (2 * torch.minimum(p, p_cheb)).clamp(max=1.0), p_cheb), p)
        tested = tested | zero
        method += " (Chebyshev where the claim is 0)"
    p_adj, idx = _bonferroni(p)  # over all P pairs, tested or not: a valid bound whichever were tested
    if math.isnan(p_adj):
        return _not_a_probability(p, idx, method, base, labels, index)
    rejected = p_adj <= alpha
    untested = int((~tested).sum())
    if untested and not rejected:
        # an untested pair whose draws are all equal names the refusal, wherever it is among them: it is a sign of a
        # map that does not draw (kept in a report), not a want of evidence (a review finding: the first untested
        # pair alone decided, so heavy tails at an earlier pair labelled it no_evidence)
        still = ~tested & constant
        first = int(torch.nonzero(still if bool(still.any()) else ~tested)[0])
        skew_first, guard = float(skew[first]), float(worst[first])
        if bool(constant[first]):
            return CheckResult.refusal(
                f"{untested} of {tested.numel()} pairs are untested: at pair {_pair(labels, first, index)} every one "
                f"of the {n} draws gave the same estimate while the claimed variance is {float(claimed[first]):.4g} "
                "> 0: a map that does not draw from its generator (every draw the same map) does that, and so does a "
                "law that puts nearly all of its mass on one value, so s² = 0 is no evidence against the claim "
                + ("(the declared bound's exact test does not reject it at these draws)" if bound is not None else
                   "(a declared bound on the estimates could make it one)") + "; the tested pairs agree with the claim",
                **base,
            )
        if bool(guarded[first]):  # the guard holds; the skewness alone keeps the normal test from reaching the level
            why = (f"guard on (x − x̄)² {guard:.3g} within its limit {VARIANCE_GUARD}, but the skewness of (x − x̄)² "
                   f"{skew_first:.3g} "
                   f"keeps the normal test's smallest p-value, {float(floor_p[first]):.3g} after Bonferroni, above the "
                   "level")
        else:
            why = (f"guard on (x − x̄)² {guard:.3g} beyond its limit {VARIANCE_GUARD}, skewness of (x − x̄)² "
                   f"{skew_first:.3g}")
        if bound is not None:
            why += (f"; the declared bound's exact test (Maurer–Pontil) resolves there only a standard deviation "
                    f"{float(reach[first]):.3g} off the claim's, more than the claimed {float(sd[first]):.3g}")
        return CheckResult.refusal(
            f"{untested} of {tested.numel()} pairs have sixth and eighth moments too large for {n} draws at level "
            f"{alpha:.3g} (at pair {_pair(labels, first, index)}: {why}); the tested pairs agree with the claim",
            no_evidence=True, **base,
        )
    pair_p = p
    if index is not None:  # the kept pairs' p-values among all of the caller's pairs (settled ones: 1)
        pair_p = torch.ones(int(settled.numel()), dtype=torch.float64).index_put_((index,), p.to(torch.float64))
    row = CheckResult(
        statistic=float(z[idx]) if bool(ok[idx]) else float((s2[idx] - claimed[idx]) / unit[idx]),
        p_value=p_adj,
        method=method,
        passed=not rejected,
        detail=f"worst pair {_pair(labels, idx, index)}: s² {float(s2[idx]):.6g}, claimed {float(claimed[idx]):.6g}",
        pair_p=pair_p,
        **base,
    )
    if futility is not None and row.passed and bool(ok.all()) and excludes_detectable_effects(
        diff, se, torch.sqrt(my.population_variance / futility.final_draws), skew, futility,
        pairs=claimed.numel(), halves=1 if bound is None else 2, studentised=True,
    ):
        _mark_early(row, futility)
    return row


def feature_example(value: float, norm: float, *, side: str = "", draw: int | None = None) -> str:
    """The counterexample of a positivity or finiteness check, in words: "query feature value -0.31 at an input of
    norm 2 (draw 5)" (a negative zero prints as 0)."""
    head = f"{side} feature value" if side else "feature value"
    tail = "" if draw is None else f" (draw {draw})"
    return f"{head} {value + 0.0:.4g} at an input of norm {norm:.4g}{tail}"


def property_check(
    violations: int, total: int, *, claim: str, name: str, seed: int, alpha: float, example: str = ""
) -> CheckResult:
    """A deterministic property (positivity, finiteness): passes iff no violation among ``total`` values."""
    passed = violations == 0
    return CheckResult(
        name=name,
        claim=claim,
        statistic=float(violations),
        p_value=1.0 if passed else 0.0,
        alpha=alpha,
        effect_size=violations / max(total, 1),
        sample_size=total,
        seed=seed,
        method="exhaustive",
        passed=passed,
        detail=example,
    )
