r"""Performer's small-weight prediction as a calibrated check (Choromanski et al. 2021, "Rethinking Attention
with Performers", §2.3 and Lemma 2; proofs/sparsity.md, item 6).

For the softmax kernel SM(x, y) = exp(xᵀy), z = x + y, τ = x − y and m iid Gaussian frequencies, the closed
forms of :mod:`kerneltheory.theory` give the relative variances

    positive:  Var/SM² = (e^{‖z‖²} − 1)/m                 (depends on z only)
    trig:      Var/SM² = 2 sinh²(‖τ‖²/2)/m                (depends on τ only)

with SM = exp((‖z‖² − ‖τ‖²)/4); where SM ≤ 1 the trig one is at least (SM⁻² − SM²)²/(2m) (proofs/sparsity.md,
item 6(a)). Along any path with SM → 0 and ‖z‖ ≤ ζ, the positive relative error stays
below (e^{ζ²} − 1)/m while the trigonometric one grows without bound. :func:`small_weight_pairs` builds such a
path (‖z‖ = ζ fixed, ‖τ‖ growing, so SM → 0 and the angle between x and y → π).

The check (:func:`relative_error_check`) draws R independent feature maps and forms, per pair p,
e_p = (Ŝ_p/SM_p − 1)², whose mean is the relative MSE. Two one-sided claims:

* ``"bounded"``: H₀: E e_p ≤ B_p for every pair; rejected when some ē_p is significantly above B_p;
* ``"grows"``: H₀: E e_p ≥ G_p for every pair; rejected when some ē_p is significantly below G_p.

Each pair gets a one-sided z-test, z_p = (ē_p − bound_p)/(s_p/√R), under the fourth-moment guard of
:func:`~kerneltheory.testing.checks.clt_guard` (refused when the normal approximation is not trusted, or
R < 64), and the family p-value is Bonferroni's P·min_p p_p, so α is the false-failure rate of the family. A pair
whose e_p or r_p = Ŝ_p/SM_p − 1 agree up to rounding in every draw (positive features at z = 0; an error of fixed
size and random sign) has no spread to studentise by and is compared with the bound up to that rounding instead.
Estimates in a format coarser than float32 (float16, bfloat16) make that rounding (64 ulps, 6–50 % of Ŝ/SM) large
enough to hide a 30 % error on every draw: a row that does not reject is then refused wherever the rounding's reach
on e_p, 2√ē_p·δ + δ², exceeds 1 % of the bound (it passed such errors before).

**Calibration (measured).** The upper-tail ``"bounded"`` test errs on the conservative side for the right-skewed
e_p. The lower-tail ``"grows"`` test is calibrated where e_p is bounded (trigonometric features: 2000 seeds at
α′ = 0.05, 0.01, 0.001 gave 88, 20 and 3 rejections); for exponential features at the boundary of its H₀ (the
bound equal to the true relative MSE) the samples that miss the log-normal tail have a low mean and pass the guard,
and it rejected 6.1 %, 1.5 % and 0.33 % of 3000 seeds at those levels (positive/gaussian, m = 8, ζ = 0.5, ‖τ‖ = 1,
8192 draws). Use ``"grows"`` for estimators with bounded estimates.
:func:`small_weight_check` supplies the bounds from theory: B = the positive iid relative variance
(e^{ζ²} − 1)/m (which also bounds orthogonal rows, Performer Thm 2 blockwise, and hyperbolic features, ½(1 −
e^{−‖z‖²}) times it); G = the trig closed form. Power is demonstrated in tests/test_sparsity.py on planted
defects: trig features claimed bounded, positive features claimed to grow, positive features without their
exp(−‖x‖²/2) term.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from scipy import stats

from .. import estimators as E
from .. import theory
from .._validation import check_alpha, check_generator, check_int, check_points, check_real
from ..montecarlo import moments
from .checks import _F32_EPS, _FORMAT_NAMES, RESOLUTION, CheckResult, clt_guard
from .replay import estimates_follow_their_generator

__all__ = [
    "CLAIMS",
    "positive_relative_variance",
    "relative_error_check",
    "small_weight_check",
    "small_weight_pairs",
    "softmax_pairs",
    "trig_relative_variance",
]

CLAIMS = ("bounded", "grows")
MIN_DRAWS = 64


def small_weight_pairs(
    dim: int, z_norm: float, tau_norms: Sequence[float], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs x_p = (z + τ_p)/2, y_p = (z − τ_p)/2 with z = ζu, τ_p = t_p v (u ⊥ v random unit vectors), so
    ‖x_p + y_p‖ = ζ, ‖x_p − y_p‖ = t_p, ‖x_p‖ = ‖y_p‖ and SM(x_p, y_p) = exp((ζ² − t_p²)/4). ``[P, d]`` each."""
    d = check_int(dim, "dim", minimum=2)
    zeta = check_real(z_norm, "z_norm", minimum=0.0)
    ts = torch.as_tensor([check_real(t, "tau_norms", minimum=0.0) for t in tau_norms], dtype=torch.float64)
    if ts.numel() == 0:
        raise ValueError("tau_norms must not be empty")
    check_generator(generator)
    basis, _ = torch.linalg.qr(torch.randn(d, 2, generator=generator, dtype=torch.float64))
    u, v = basis[:, 0], basis[:, 1]
    z = zeta * u
    tau = ts[:, None] * v
    return (z + tau) / 2, (z - tau) / 2


def softmax_pairs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SM(x_p, y_p) = exp(x_pᵀy_p), ``[P]``."""
    return torch.exp((x * y).sum(-1))


def positive_relative_variance(x: torch.Tensor, y: torch.Tensor, num_features: int) -> torch.Tensor:
    """:func:`kerneltheory.theory.softmax_positive_relative_variance` at the pairs in float64: (e^{‖z‖²} − 1)/m,
    ``[P]`` (not theory.softmax_positive_variance / SM², whose two terms underflow together once SM does: from ‖τ‖ ≈
    38 at ‖z‖ = 0.5 that ratio was 0, then NaN)."""
    x, y = _pair_points(x, y)
    return theory.softmax_positive_relative_variance(x, y, num_features)


def trig_relative_variance(x: torch.Tensor, y: torch.Tensor, num_features: int) -> torch.Tensor:
    """:func:`kerneltheory.theory.softmax_trig_relative_variance` at the pairs in float64: 2 sinh²(‖τ‖²/2)/m,
    ``[P]``."""
    x, y = _pair_points(x, y)
    return theory.softmax_trig_relative_variance(x, y, num_features)


def _pair_points(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x = check_points(x, "x").to(torch.float64)
    y = check_points(y, "y", dim=x.shape[-1]).to(torch.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


Estimates = Callable[[torch.Tensor, torch.Tensor, torch.Generator, int], torch.Tensor]


def _estimates_fn(estimator) -> Estimates:
    if hasattr(estimator, "sample_estimates"):
        return estimator.sample_estimates
    if callable(estimator):
        return estimator
    raise TypeError(
        "estimator must have .sample_estimates(x, y, generator, draws) or be such a callable, "
        f"got {type(estimator).__name__}"
    )


def relative_error_check(
    estimator,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    claim: str,
    bound: torch.Tensor,
    draws: int = 4096,
    alpha: float = 1e-6,
    seed: int = 0,
    name: str = "small-weight relative error",
) -> CheckResult:
    """Test the claim on E[(Ŝ_p/SM_p − 1)²] against ``bound`` ``[P]`` (module docstring).

    ``estimator``: an object with ``.sample_estimates(x, y, generator, draws) -> [draws, P]`` (a
    RandomFeatureEstimator) or that callable itself. ``claim``: ``"bounded"`` (H₀: mean ≤ bound) or
    ``"grows"`` (H₀: mean ≥ bound). Effect size: max ē/bound (bounded) or min ē/bound (grows).
    """
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {CLAIMS}, got {claim!r}")
    x = check_points(x, "x")
    y = check_points(y, "y", dim=x.shape[-1])
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must both have shape [P, d], got {tuple(x.shape)} and {tuple(y.shape)}")
    p_count = x.shape[0]
    if isinstance(bound, torch.Tensor):
        if bound.is_complex() or not (bound.is_floating_point() or bound.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"bound must be a real number or a real tensor of P = {p_count} values, got "
                             f"{bound.dtype}")
    else:  # a Python number or sequence, read in float64 (torch's default dtype would round 0.01 to float32)
        try:
            bound = torch.as_tensor(bound, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"bound must be a real number or a real tensor of P = {p_count} values, got "
                             f"{bound!r}") from exc
    if bound.numel() not in (1, p_count) or bound.dim() > 1:
        raise ValueError(f"bound must be a number or a tensor of shape [P] = [{p_count}], got shape "
                         f"{tuple(bound.shape)}")
    bound = bound.to(torch.float64).reshape(-1).expand(p_count).clone()
    if not bool(torch.isfinite(bound).all()) or bool((bound < 0).any()):
        raise ValueError("bound must be finite and >= 0 at every pair")
    r = check_int(draws, "draws", minimum=1)
    alpha = check_alpha(alpha)
    seed = check_int(seed, "seed", minimum=0)
    fn = _estimates_fn(estimator)
    sm = softmax_pairs(x.to(torch.float64), y.to(torch.float64))  # in float64 whatever x's dtype
    outside = ~((sm >= torch.finfo(torch.float64).tiny) & torch.isfinite(sm))
    if bool(outside.any()):
        p = int(outside.nonzero()[0])
        raise ValueError(f"x, y: SM = exp(xᵀy) = {float(sm[p]):.3g} at pair {p} (xᵀy = "
                         f"{float((x[p].double() * y[p].double()).sum()):.4g}) is outside float64's normal range, "
                         "where the relative error Ŝ/SM − 1 is not computed")
    formats = [x.dtype]  # the coarsest format among x and the estimates: its ε sets the exactness floor

    def checked(gen: torch.Generator, n: int) -> torch.Tensor:
        out = fn(x, y, gen, n)
        if not isinstance(out, torch.Tensor) or not out.is_floating_point() or tuple(out.shape) != (n, p_count):
            got = (f"{out.dtype} tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
                   else type(out).__name__)
            raise ValueError(f"estimator must return real floating-point estimates of shape [draws, P] = "
                             f"[{n}, {p_count}] (a call for {n} draws), got {got}")
        formats.append(out.dtype)
        return out

    def rel_err(gen: torch.Generator, n: int) -> torch.Tensor:
        rel = checked(gen, n).to(torch.float64) / sm - 1.0
        return torch.cat([rel**2, rel], dim=1)  # e_p, and r_p to recognise exact estimators

    estimates_follow_their_generator(checked, "estimator", seed)  # (its formats are those of the draws below too)
    both = moments(rel_err, r, seed=seed, block=min(r, 1024))
    mom, rel = both.select(slice(0, p_count)), both.select(slice(p_count, 2 * p_count))
    mean = mom.mean
    ratio = mean / torch.where(bound > 0, bound, torch.ones_like(bound))
    effect = float(ratio.max() if claim == "bounded" else ratio.min())
    base = dict(
        name=name, claim=f"relative error {claim}", alpha=alpha, effect_size=effect, sample_size=r, seed=seed
    )
    se = mom.stderr if r > 1 else torch.zeros_like(mean)
    if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(mom.fourth_central).all())):
        return CheckResult.refusal(
            f"the squared relative errors or their moments overflow float64 (largest mean {float(mean.max()):.3g}): "
            "estimates this far from SM cannot be averaged; smaller tau_norms or z_norm", **base)
    # An exact estimator (positive features at z = 0) gives Ŝ/SM = 1 up to rounding: r_p varies by less than
    # δ = 64ε(1 + |r̄_p|), ε that of the coarsest format of x and the estimates. Such a pair is compared without a
    # CLT: e_p = (r̄_p + δ')², |δ'| ≤ δ, lies within 2|r̄_p|δ + δ² of r̄_p², so it passes iff its mean is within that
    # floor of the bound's side. So is a pair whose e_p itself varies by less than 64ε(1 + ē_p) (an error of fixed
    # size and random sign): its standard error is rounding, and a z-score by it was 0/0 (NaN), which hid a
    # rejection at another pair.
    eps = max(torch.finfo(f).eps for f in formats)
    delta = 64 * eps * (1 + rel.mean.abs())
    delta_e = 64 * eps * (1 + mean.abs())
    if r > 1:
        zero_r = rel.population_variance.sqrt() <= delta
        zero = zero_r | (mom.population_variance.sqrt() <= delta_e)
    else:
        zero_r = zero = torch.ones_like(mean, dtype=torch.bool)
    floor = torch.where(zero_r, 2 * rel.mean.abs() * delta + delta**2, torch.where(zero, delta_e, 0.0))
    if r < MIN_DRAWS:
        ok, worst = False, math.inf
    elif bool(zero.all()):
        ok, worst = True, 0.0
    else:
        ok, worst = clt_guard(mom.select(~zero))
    if not ok:
        return CheckResult.refusal(
            f"{r} draws: the normal approximation of the mean relative MSE is not trusted (guard {worst:.3g})",
            **base,
        )
    diff = mean - bound
    z = torch.where(
        zero,
        torch.where(diff > floor, math.inf, torch.where(diff < -floor, -math.inf, 0.0)),
        diff / torch.where(zero, torch.ones_like(se), se),
    )
    if bool(torch.isnan(z).any()):  # no path above gives one; never read a NaN as p = 1
        return CheckResult.refusal(f"the z-score is not a number at pair {int(torch.isnan(z).nonzero()[0])}", **base)
    zn = z.numpy()
    p = torch.from_numpy(stats.norm.sf(zn) if claim == "bounded" else stats.norm.cdf(zn))
    idx = int(torch.argmin(p))
    p_adj = min(1.0, float(p[idx]) * p.numel())
    if not p_adj <= alpha and eps > _F32_EPS:  # a format coarser than float32 (float16, bfloat16): δ of 64 ulps is
        # 6–50 % of Ŝ/SM, so errors of that size counted as rounding and a 30 % error passed a bound of 0.1 %: a pair
        # whose rounding floor of e_p, 2√ē_p·δ + δ², reaches RESOLUTION of the bound cannot be told from its bound
        reach = 2 * mean.clamp_min(0).sqrt() * delta + delta**2
        share = torch.where(bound > 0, reach / torch.where(bound > 0, bound, torch.ones_like(bound)), math.inf)
        worst = int(torch.argmax(share))
        if float(share[worst]) > RESOLUTION:
            fmt = _FORMAT_NAMES.get(eps, f"a format of machine epsilon {eps:.3g}")
            return CheckResult.refusal(
                f"the estimates are returned in {fmt}: its rounding (δ = {float(delta[worst]):.3g} of Ŝ/SM) may move "
                f"the relative MSE at pair {worst} by up to {float(reach[worst]):.3g}, "
                f"{'beyond' if float(share[worst]) == math.inf else f'{float(share[worst]):.3g}× of'} the "
                f"{'bound' if claim == 'bounded' else 'floor'} {float(bound[worst]):.3g} (more than the {RESOLUTION:g} "
                "this check resolves), so agreement within that rounding is no pass (return float32 or float64 "
                "estimates)", **base)
    return CheckResult(
        statistic=float(z[idx]),
        p_value=p_adj,
        method="one-sided clt (Bonferroni)",
        passed=p_adj > alpha,
        detail=f"worst pair {idx}: relative MSE {float(mean[idx]):.4g} ± {float(se[idx]):.2g}, "
        f"{'bound' if claim == 'bounded' else 'floor'} {float(bound[idx]):.4g}, SM {float(sm[idx]):.3g}",
        **base,
    )


def small_weight_check(
    estimator="positive/gaussian",
    *,
    claim: str = "bounded",
    dim: int | None = None,
    num_features: int | None = None,
    z_norm: float = 0.5,
    tau_norms: Sequence[float] = (1.0, 2.0, 3.0),
    draws: int = 8192,
    alpha: float = 1e-6,
    seed: int = 0,
) -> CheckResult:
    """Performer's prediction on the path ‖z‖ = ``z_norm``, ‖τ‖ ∈ ``tau_norms`` (SM from e^{(ζ²−1)/4} down to
    e^{(ζ²−9)/4} ≈ 0.11 by default), bounds from theory: ``"bounded"`` against the positive iid relative
    variance (e^{ζ²} − 1)/m, ``"grows"`` against the trig closed form 2 sinh²(‖τ‖²/2)/m.

    Defaults (m = 256, ζ = 0.5, R = 8192) keep the fourth-moment guard far from refusing: over 100 seeds its
    largest value for positive/gaussian was 0.054 (at m = 64 it reached 0.10, i.e. about 1% refusals, the
    log-normal tail of single features showing in the sample kurtosis of the squared errors).

    ``estimator``: a registry name, a factory ``f(num_features) -> estimator``, or an estimator object
    (anything with ``.sample_estimates``). ``num_features`` and ``dim`` default to 256 and 4 for a name or a
    factory; an object's own ``num_features`` and ``dim`` are used (the bounds are those of its m: with the
    default 256 in their place, positive features at m = 16 failed a true claim and trig features at m = 16 passed
    a false one), and an object without them needs both given. A value given that differs from the object's is an
    error. The pairs come from ``seed`` (independent of the draws).
    """
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {CLAIMS}, got {claim!r}")
    if isinstance(tau_norms, (str, bytes)) or not isinstance(tau_norms, Sequence | torch.Tensor):
        raise ValueError(f"tau_norms must be a sequence of norms, got {type(tau_norms).__name__}")
    if isinstance(estimator, str):
        m = check_int(256 if num_features is None else num_features, "num_features", minimum=1)
        d = check_int(4 if dim is None else dim, "dim", minimum=2)
        est = E.get(estimator, d, m)
        label = estimator
    elif hasattr(estimator, "sample_estimates"):
        est, label = estimator, getattr(estimator, "name", type(estimator).__name__)
        m = _own(est, "num_features", num_features, 1)
        d = _own(est, "dim", dim, 2)
    elif callable(estimator):
        m = check_int(256 if num_features is None else num_features, "num_features", minimum=1)
        d = check_int(4 if dim is None else dim, "dim", minimum=2)
        est = estimator(m)
        label = getattr(est, "name", type(est).__name__)
        _own(est, "num_features", m, 1, optional=True)
        _own(est, "dim", d, 2, optional=True)
    else:
        raise TypeError(
            f"estimator must be a name, a factory or an estimator, got {type(estimator).__name__}"
        )
    seed = check_int(seed, "seed", minimum=0)
    pair_seed = (seed ^ 0x5A5A5A5) & (2**63 - 1)  # any seed ≥ 0 (manual_seed takes fewer than 64 bits)
    x, y = small_weight_pairs(d, z_norm, tau_norms, torch.Generator().manual_seed(pair_seed))
    sm = softmax_pairs(x, y)
    if not bool(((sm >= torch.finfo(torch.float64).tiny) & torch.isfinite(sm)).all()):
        raise ValueError(f"z_norm = {z_norm}, tau_norms = {list(tau_norms)}: SM = exp((‖z‖² − ‖τ‖²)/4) leaves "
                         f"float64's "
                         f"normal range (least {float(sm.min()):.3g}), where the relative error is not computed: "
                         "‖τ‖ ≲ 53")
    try:  # the theory functions raise where their value is not a finite float64
        if claim == "bounded":
            bound = positive_relative_variance(x, y, m).max().expand(x.shape[0])
        else:
            bound = trig_relative_variance(x, y, m)
    except ValueError as exc:
        raise ValueError(f"the {'positive' if claim == 'bounded' else 'trig'} relative variance overflows float64 at "
                         f"z_norm = {z_norm}, tau_norms = {list(tau_norms)}: smaller norms ({exc})") from None
    return relative_error_check(
        est,
        x,
        y,
        claim=claim,
        bound=bound,
        draws=draws,
        alpha=alpha,
        seed=seed,
        name=f"{label}: small weights",
    )


def _own(est, attr: str, given, minimum: int, optional: bool = False) -> int:
    """The estimator's own ``attr`` (num_features or dim), checked against a ``given`` value; ``given`` where the
    object has none (an error when nothing is given, unless ``optional``)."""
    have = getattr(est, attr, None)
    if isinstance(have, int) and not isinstance(have, bool):
        if given is not None and check_int(given, attr, minimum=minimum) != have:
            raise ValueError(f"{attr} = {given} differs from the estimator's own {attr} = {have}: the bounds must be "
                             f"those of the estimator's m and d (leave {attr} out)")
        return have
    if given is None:
        if optional:
            return 0
        raise ValueError(f"{attr}: the estimator has no {attr} attribute, so the bounds need it given")
    return check_int(given, attr, minimum=minimum)
