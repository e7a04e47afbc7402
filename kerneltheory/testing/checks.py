r"""Calibrated statistical checks of claims (CONVENTIONS.md).

Each check is a hypothesis test with a declared false-failure rate α, never an ``allclose`` with a chosen
tolerance. It returns a :class:`CheckResult` row (name, statistic, p-value, α, effect size, sample size, seed,
method, passed). The test of a mean is chosen by the estimator's tail class:

* **Bounded** when every estimate lies in a known interval [−B_p, B_p] (trigonometric features:
  |φ(x)ᵀφ(y)| ≤ w(x)w(y)): Hoeffding and the empirical Bernstein bound, both exact for every n
  (:func:`bounded_p_values`).
* **CLT** (z-test) with the exact variance if the claim provides one, else the sample variance, guarded by the
  fourth moment: the relative error of the sample variance is about √((κ_p − 1)/n) and the Berry–Esseen
  term |skew_p|/√n; when either exceeds :data:`GUARD` the normal approximation is not trusted.
* **Median of means** with Chebyshev inside the blocks, when the CLT guard fails but the exact variance σ_p²
  is known: with k blocks of b draws, a block mean misses by more than t with probability q ≤ σ²/(b t²), so
  the median misses only if at least ⌈k/2⌉ blocks do: p ≤ P(Binomial(k, q) ≥ ⌈k/2⌉). Valid for any tail.
* **Refused** when none of these applies (heavy tails, no variance, too few draws): the row says so and
  counts as not passed — a check that cannot mean anything never passes silently.

Across the P pairs of an input family the p-value is Bonferroni-adjusted (P × min p_p), so α is the family's
false-failure rate. The variance check compares the sample variance with the claimed one through the
asymptotic normality of s²: Var(s²) ≈ (μ₄ − σ⁴(n − 3)/(n − 1))/n with μ₄ estimated, under the same guard.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from scipy import stats

from ..montecarlo import Moments

GUARD = 0.1  # largest trusted √((κ−1)/n) and |skew|/√n
MIN_DRAWS = 64


@dataclass
class CheckResult:
    """One row of a report."""

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

    @classmethod
    def refusal(cls, detail: str, **fields) -> CheckResult:
        """The row of a check that cannot mean anything here (too few draws, tails too heavy, ...): no
        statistic, no p-value, method "refused", not passed; ``effect_size`` is NaN unless given."""
        fields.setdefault("effect_size", math.nan)
        return cls(statistic=math.nan, p_value=math.nan, method="refused", passed=False, detail=detail, **fields)

    @property
    def refused(self) -> bool:
        return self.method == "refused"

    def as_dict(self) -> dict:
        return asdict(self)


def _bonferroni(p: torch.Tensor) -> tuple[float, int]:
    """(P × min p, argmin) over the pairs; clipped to 1 because it is a probability bound."""
    p = p.to(torch.float64)
    idx = int(torch.argmin(p))
    return min(1.0, float(p[idx]) * p.numel()), idx


def _two_sided_normal(z: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(2.0 * stats.norm.sf(z.abs().cpu().numpy()))


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
    p_h = (2 * torch.exp(-n * t**2 / (2 * safe_b**2))).clamp(max=1.0)
    a = torch.sqrt(2 * sample_var.clamp_min(0.0).to(torch.float64) / n)
    c = 14 * safe_b / (3 * max(n - 1, 1))
    root_l = (torch.sqrt(a**2 + 4 * c * t) - a) / (2 * c)
    p_eb = (4 * torch.exp(-(root_l**2))).clamp(max=1.0)
    p = (2 * torch.minimum(p_h, p_eb)).clamp(max=1.0)
    return torch.where(b > 0, p, (t == 0).to(torch.float64))


def rounding_floor(*values: torch.Tensor) -> float:
    """64 · ε(float64) · the largest magnitude among ``values``: the scale below which two computations of the
    same number cannot be told apart from rounding (used for zero-variance pairs)."""
    scale = max(float(v.detach().abs().max()) if v.numel() else 0.0 for v in values)
    return 64 * torch.finfo(torch.float64).eps * scale


def clt_guard(m: Moments) -> tuple[bool, float]:
    """Whether the normal approximation of the mean and of the variance can be trusted, and the worst term."""
    n = m.count
    if n < MIN_DRAWS:
        return False, math.inf
    var = m.population_variance
    with torch.no_grad():
        degenerate = var <= 0
        kurt = torch.where(
            degenerate, torch.ones_like(var), m.fourth_central / torch.where(degenerate, 1.0, var) ** 2
        )
        skew = torch.where(degenerate, torch.zeros_like(var), m.skewness.nan_to_num(0.0))
    worst = max(
        float(torch.sqrt((kurt - 1).clamp_min(0) / n).max()), float((skew.abs() / math.sqrt(n)).max())
    )
    return worst <= GUARD, worst


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
    atol: float = 0.0,
    claim: str = "unbiased",
) -> CheckResult:
    """Test H₀: E[estimate_p] = target_p for every pair p (see the module docstring for the method choice).

    ``bound``: B_p with |estimate| ≤ B_p (enables Hoeffding). ``variance``: the exact per-draw variance σ_p²
    (enables the exact-variance CLT and median of means; the latter needs the raw ``samples`` [n, P]).
    ``target_stderr``: the standard error of a Monte Carlo target drawn independently of the estimates; the
    test is then the two-sample z-test on mean − target with SE² = s²/n + SE_target² (CLT only).
    ``atol``: the rounding floor for pairs whose draws are equal up to rounding (standard error ≤ atol): such a
    pair passes iff |mean − target| ≤ atol. Callers derive it from machine epsilon and the scale of the whole check
    (:func:`rounding_floor`), never from the pair's own target, which may itself be rounding noise.
    The effect size is the largest |mean − target| / max(|target|, σ) over the pairs.
    """
    n = m.count
    target = target.to(torch.float64).cpu()
    diff = m.mean - target
    sd = torch.sqrt(m.population_variance if variance is None else variance.to(torch.float64).cpu())
    scale = torch.maximum(target.abs(), sd)
    effect = float((diff.abs() / torch.where(scale > 0, scale, torch.ones_like(scale))).max())
    base = dict(name=name, claim=claim, alpha=alpha, effect_size=effect, sample_size=n, seed=seed)
    if bound is not None and target_stderr is None:
        b = bound.to(torch.float64).cpu()
        outside = samples is not None and bool((samples.abs().cpu() > b * (1 + 1e-9)).any())
        if outside or bool((m.mean.abs() > b * (1 + 1e-9)).any()):
            return CheckResult(
                statistic=math.inf,
                p_value=0.0,
                method="bounded",
                passed=False,
                detail="an estimate lies outside its declared bound",
                **base,
            )
        p = bounded_p_values(diff, b, m.variance if n > 1 else torch.zeros_like(b), n)
        p_adj, idx = _bonferroni(p)
        stat = float(diff[idx].abs() / b[idx]) if float(b[idx]) > 0 else 0.0
        return CheckResult(
            statistic=stat,
            p_value=p_adj,
            method="bounded",
            passed=p_adj > alpha,
            detail=f"worst pair {idx}: mean {float(m.mean[idx]):.6g}, target {float(target[idx]):.6g}",
            **base,
        )
    ok, worst = clt_guard(m)
    if ok:
        var = m.variance if variance is None else variance.to(torch.float64).cpu()
        se = torch.sqrt(var / n)
        if target_stderr is not None:
            se = torch.sqrt(se**2 + target_stderr.to(torch.float64).cpu() ** 2)
        zero = se <= atol  # draws equal up to rounding: compare with the rounding floor instead
        z = torch.where(
            zero,
            torch.where(diff.abs() > atol, math.inf, 0.0),
            diff / torch.where(zero, torch.ones_like(se), se),
        )
        p_adj, idx = _bonferroni(_two_sided_normal(z))
        method = "clt (exact variance)" if variance is not None else "clt"
        return CheckResult(
            statistic=float(z[idx]),
            p_value=p_adj,
            method=method,
            passed=p_adj > alpha,
            detail=f"worst pair {idx}: mean {float(m.mean[idx]):.6g} ± {float(se[idx]):.3g}, "
            f"target {float(target[idx]):.6g}",
            **base,
        )
    if variance is not None and samples is not None and target_stderr is None:
        return _median_of_means(samples, target, variance.to(torch.float64).cpu(), base)
    return CheckResult.refusal(
        f"tails too heavy for {n} draws (guard {worst:.3g} > {GUARD}) and no exact variance",
        **base,
    )


def _median_of_means(samples: torch.Tensor, target, variance, base) -> CheckResult:
    x = samples.to(torch.float64).cpu()
    n = x.shape[0]
    k = max(3, min(64, n // 32))
    b = n // k
    block_means = x[: k * b].reshape(k, b, -1).mean(1)
    med = block_means.median(0).values
    t = (med - target).abs()
    q = (variance / (b * torch.where(t > 0, t, torch.ones_like(t)) ** 2)).clamp(max=1.0)
    need = math.ceil(k / 2)
    p = torch.from_numpy(stats.binom.sf(need - 1, k, q.numpy()))
    p = torch.where(t > 0, p, torch.ones_like(p))
    p_adj, idx = _bonferroni(p)
    base = dict(base, sample_size=k * b)
    return CheckResult(
        statistic=float(t[idx] / torch.sqrt(variance[idx] / b)),
        p_value=p_adj,
        method=f"median of {k} means",
        passed=p_adj > base["alpha"],
        detail=f"worst pair {idx}: median {float(med[idx]):.6g}, target {float(target[idx]):.6g}",
        **base,
    )


def variance_check(
    m: Moments,
    claimed: torch.Tensor,
    *,
    alpha: float,
    name: str,
    seed: int,
    samples: torch.Tensor | None = None,
) -> CheckResult:
    """Test H₀: Var(estimate_p) = claimed_p through the asymptotic normality of the sample variance.

    A claimed variance of exactly 0 (a deterministic estimate) is checked exactly instead: every draw of
    that pair must give the same number (needs ``samples`` [n, P]).
    """
    n = m.count
    claimed = claimed.to(torch.float64).cpu()
    zero = claimed == 0
    if bool(zero.any()):
        if samples is None:
            raise ValueError("a claimed variance of 0 is checked exactly and needs samples=[n, P]")
        s = samples.cpu()
        constant = (s == s[:1]).all(0)
        bad = int((zero & ~constant).sum())
        if bool(zero.all()) or bad:
            return property_check(
                bad,
                int(zero.sum()),
                claim="variance",
                name=name,
                seed=seed,
                alpha=alpha,
                example="" if not bad else "a pair with claimed variance 0 varies across draws",
            )
        keep = ~zero
        m = m.select(keep)
        claimed = claimed[keep]
    s2 = m.variance
    scale = torch.where(claimed > 0, claimed, torch.ones_like(claimed))
    effect = float(((s2 - claimed).abs() / scale).max())
    base = dict(name=name, claim="variance", alpha=alpha, effect_size=effect, sample_size=n, seed=seed)
    ok, worst = clt_guard(m)
    if not ok:
        return CheckResult.refusal(
            f"fourth moment too large for {n} draws (guard {worst:.3g} > {GUARD})",
            **base,
        )
    mu4 = m.fourth_central
    var_s2 = (mu4 - claimed**2 * (n - 3) / (n - 1)) / n
    var_s2 = torch.where(var_s2 > 0, var_s2, (2 * claimed**2 / (n - 1)))
    z = (s2 - claimed) / torch.sqrt(var_s2)
    p_adj, idx = _bonferroni(_two_sided_normal(z))
    return CheckResult(
        statistic=float(z[idx]),
        p_value=p_adj,
        method="clt of s²",
        passed=p_adj > alpha,
        detail=f"worst pair {idx}: s² {float(s2[idx]):.6g}, claimed {float(claimed[idx]):.6g}",
        **base,
    )


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
