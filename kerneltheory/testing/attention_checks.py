r"""Calibrated checks of linear attention (MATH.md §5; CONVENTIONS.md), each returning a :class:`CheckResult`.

**Convergence rate** (:func:`attention_convergence_check`). Linear attention with m random features is a
*ratio* estimator, out_i = N̂_i/Ẑ_i with N̂, Ẑ unbiased for N = Σ_j SM(q̃_i, k̃_j)v_j and Z = Σ_j SM(q̃_i, k̃_j)
(q̃ = q·d^{-1/4}, k̃ = k·d^{-1/4}). A first-order expansion gives
out_i − N_i/Z_i = (δN − out_i δZ)/Z_i + O_p(1/m): the ratio is biased at O(1/m), so MSE(m) = A/m + B/m² + O(m⁻³)
and log MSE = log A − log m + (B/A)/m + O(m⁻²). The 1/m law holds only asymptotically: a fit of the slope alone
drifts, in z units, like √R·(B/A)/m (measured on a correct FAVOR+ at m = 64…4096, stabiliser[scale] row, 60
seeds: mean z +0.83 at 64 draws, +1.06 at 256, +1.70 at 1024; experiments/attention/quoted_numbers.py). So the check
fits the curvature too
(proofs/attention_audit.md, item 13): weighted least squares of y_m = log MSE_m + v_m/2 on (1, log m, 1/m) over
the grid ``ms`` (each MSE from ``draws`` independent draws; v_m = s_m²/(R·MSE_m²) the delta-method variance of
log MSE_m, s_m² the sample variance of the per-draw squared errors; +v_m/2 removes the O(1/R) bias of the log),
and tests H₀: g = −1 against the one-sided g > −1 (a bias that does not shrink makes the MSE fall more slowly)
with z = (ĝ + 1 − D)/SE, D = Σ_m |L_m|·(ρ²/m)²/(1 − ρ²/m) the bound on what the neglected O(m⁻²) terms can move ĝ
(L the row of the estimator, ĝ = Σ_m L_m y_m), p = Φ̄(z); effect size |ĝ + 1|. The smallest m are dropped while
D > SE (the bound would cost more than one unit of the test's resolution), and the row is refused when fewer
than three feature counts remain.

Scope, found by running it (tests/test_attention_checks.py): for positive features the 1/m law is
*asymptotic*. The estimates are log-normal; while m is small against the tail weight exp(‖q̃ + k̃‖²), the
ratio (a convex combination of the values, so bounded) has an MSE far below σ²/m, and the slope between
m = 16 and 1024 is shallower than −1 (≈ −0.35 at input std 1.0, d = 8). Hence the regime rule
(proofs/attention_audit.md, item 11): only the m ≥ ρ², ρ = max_{i,j} exp(‖q̃_i + k̃_j‖²) the tail weight of the inputs
(:func:`tail_weight`), enter the fit, and the row is refused when fewer than three do (raise the m or lower the input
scale); ρ ≈ 3–9 at the default inputs (std 0.3), ≈ 10⁵ at std 1.0. A non-finite error fails the row, naming the
position (item 12). With a kernel reference κ the features are unseen, and ρ = max κ(q, q)κ(k, k)κ(q, k)² (item
11(b)): the same ρ for softmax written as a kernel function (which, with every m in the fit, failed a correct
FAVOR+ at input std 0.8: z = 5.5–8.4 at 4 of 4 seeds), at most 1 for kernels bounded by 1 on their diagonal; and a
slope that rejects while the smallest kept m is below ρ_u², ρ_u = max κ(q, k)²/(κ(q, −q)κ(k, −k))
(:func:`unseen_tail_weight`, the positive features' tail weight for the Gaussian kernel as well), is refused, not
failed (item 11(c): positive features for the Gaussian kernel, a correct map, failed at input std 0.5). A
planted defect that does not cancel in the ratio leaves a bias that does not fall with m: the MSE flattens and the
check rejects.
A defect that *does* cancel (a positive constant on all keys' features, or a per-query constant) is not a
defect of attention at all: the check passes it, correctly.

**Stabiliser legality** (:func:`stabiliser_legality_check`). A stabiliser acts on the logs of the features,
(log φ_q, log φ_k) → (log φ_q', log φ_k'). It is legal iff it leaves attention unchanged, i.e. it shifts
each query's logs by a constant of that query and every key's logs by one shared constant (MATH.md §5,
proofs/stabiliser_legality.md). The check computes attention with and without it in float64 and passes iff
every output entry agrees within the rounding floor (standard floating-point error bounds, Higham 2002 §3):
for one evaluation with features Φ (query side) and Ψ (key side),

    |Δout_ic| ≤ [(γ_{n_k + D + 1} + 2δ)·(|Φ||Ψ|ᵀ(|v| + |out|·1))_ic] / |Z_i| + ε|out_ic|,

γ_N = Nε/(1 − Nε), ε = 2⁻⁵³, δ = ε(max|log φ| + 1) the relative error of exp at an argument of that size.
The floor is twice the sum of the two evaluations' bounds (second-order slack). It is deterministic: the
p-value is 1 (agree) or 0 (differ), method "rounding floor".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import stats

from .. import estimators as E
from .._validation import check_alpha, check_int, check_points, check_real, generator_for
from ..attention import (
    _check_mask,
    _features,
    _noncausal,
    _resolve,
    linear_attention,
    per_query_max,
    shared_key_max,
    softmax_attention,
)
from .checks import CheckResult, binade_exponents

__all__ = [
    "attention_convergence_check",
    "asymptotic_grid",
    "curvature_fit",
    "mse_slope_check",
    "per_key_max",
    "per_query_max",
    "remainder_bound",
    "shared_key_max",
    "stabiliser_legality_check",
    "tail_weight",
    "unseen_tail_weight",
]

MAX_REL_SE = 0.5  # largest trusted √(s²/R)/MSE: beyond it log MSE is not linear in its error
MIN_DRAWS = 64  # as checks.MIN_DRAWS: at 16 draws trig features rejected 77 of 1015 correct runs at α′ = 0.05
MIN_POINTS = 3  # a, g and c of the curvature fit (module docstring)


def per_key_max(log_phi_q: torch.Tensor, log_phi_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ILLEGAL (a planted defect): log φ(k_j) − max_f log φ(k_j)_f, a different constant for every key. It
    reweights key j by exp(−max_f log φ(k_j)_f) inside every row and biases attention."""
    return log_phi_q, log_phi_k - log_phi_k.amax(-1, keepdim=True)


# ---------------------------------------------------------------------------------------------------
# Convergence rate
# ---------------------------------------------------------------------------------------------------


def _factory(estimator, dim: int, dtype) -> Callable[[int], object]:
    if isinstance(estimator, str):
        return lambda m: E.get(estimator, dim, m, dtype=dtype)
    if callable(estimator):
        return estimator
    raise TypeError(
        "estimator_name must be a registry name or a factory m -> estimator (with .draw(generator, batch)), "
        f"got {type(estimator).__name__}"
    )


def weighted_fit(
    design: np.ndarray, y: np.ndarray, var_y: np.ndarray, k: int
) -> tuple[float, float, np.ndarray, float]:
    """Weighted least squares y ≈ design·β with weights 1/var_y: (β̂_k, its standard error, the row L with
    β̂_k = Σ_i L_i y_i, χ² of the residuals). The one fit behind :func:`wls_slope` and :func:`curvature_fit`."""
    x = np.asarray(design, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = 1.0 / np.asarray(var_y, dtype=np.float64)
    cov = np.linalg.inv(x.T @ (w[:, None] * x))
    row = (cov @ x.T)[k] * w
    beta = cov @ (x.T @ (w * y))
    resid = y - x @ beta
    return float(beta[k]), float(math.sqrt(cov[k, k])), row, float((w * resid**2).sum())


def wls_slope(x: np.ndarray, y: np.ndarray, var_y: np.ndarray) -> tuple[float, float, float]:
    """(slope, standard error, χ² of the residuals) of the weighted least-squares line y ≈ a + b·x, weights 1/var_y."""
    x = np.asarray(x, dtype=np.float64)
    slope, se, _, chi2 = weighted_fit(np.stack([np.ones_like(x), x], axis=1), y, var_y, 1)
    return slope, se, chi2


def curvature_fit(ms: Sequence[float], y: np.ndarray, var_y: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """Weighted least squares of y_m ≈ a + g·log m + c/m (weights 1/var_y; proofs/attention_audit.md, item 13):
    (ĝ, its standard error, the row L with ĝ = Σ_m L_m y_m, χ² of the residuals). L·1 = 0, L·log m = 1 and
    L·(1/m) = 0, so neither the intercept nor the curvature term moves ĝ. Needs three distinct m."""
    m = np.asarray(ms, dtype=np.float64)
    design = np.stack([np.ones_like(m), np.log(m), m.min() / m], axis=1)  # 1/m scaled by min m: c is not tested
    return weighted_fit(design, y, var_y, 1)


def remainder_bound(ms: Sequence[float], row: np.ndarray, rho: float) -> float:
    """D = Σ_m |L_m|·(ρ²/m)²/(1 − ρ²/m): the largest shift of ĝ = Σ_m L_m y_m (:func:`curvature_fit`) by the terms
    of log MSE beyond c/m when the expansion's coefficients satisfy |c_j| ≤ ρ^{2j}, i.e. it is a series in ρ²/m, the
    parameter of the regime rule (assumption (A) of proofs/attention_audit.md, item 13); infinite when some m ≤ ρ²."""
    m = np.asarray(ms, dtype=np.float64)
    if not bool((m > rho * rho).all()):
        return math.inf
    t = rho * rho / m
    return float((np.abs(row) * t * t / (1.0 - t)).sum())


def rounding_bound(mse: Sequence[float], row: np.ndarray, floor: float) -> float:
    """The largest rise of ĝ = Σ_m L_m y_m when rounding adds between 0 and ``floor`` to each MSE: Σ_{L_m > 0}
    L_m·log(1 + R/(MSE_m − R)) (infinite where MSE_m ≤ R); 0 without a floor."""
    if not floor > 0:
        return 0.0
    m = np.asarray(mse, dtype=np.float64)
    if not bool((m > floor).all()):
        return math.inf
    return float((np.clip(row, 0.0, None) * np.log1p(floor / (m - floor))).sum())


def _exact_refusal(q, k, v, base: dict) -> CheckResult | None:
    """The refusal of a slope or bias row at inputs where attention is exact (:func:`_exact_inputs`), or None."""
    why = _exact_inputs(q, k, v)
    if why is None:
        return None
    return CheckResult.refusal(f"the attention is exact at these inputs ({why}): every draw's error is rounding, "
                               "whose size need not fall as 1/m, so there is no Monte Carlo error whose law could be "
                               "tested", **base)


def _exact_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str | None:
    """Why attention is exact at these inputs, for every kernel, every draw and causal or not (the slope rows run
    without a mask), or None: one token; every value equal (each output is that value); every key equal (each
    query's weights are equal, and its output the mean of the values it sees, which exact attention gives too).
    The errors are then rounding, whose size need not fall as 1/m (proofs/attention_audit.md, item 13(f))."""
    if q.shape[-2] == 1:
        return "one token"
    if bool((v == v[..., :1, :]).all()):
        return "every value equal"
    if bool((k == k[..., :1, :]).all()):
        return "every key equal"
    return None


def _attention_with(res, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask, stabiliser):
    """(φ_q, φ_k, out, den) of non-causal attention with ``stabiliser`` (False: none) on the logs."""
    _, phi_q, phi_k = _features(res, q, k, mask, stabiliser)
    num, den = _noncausal(phi_q, phi_k, v)
    return phi_q, phi_k, num / den.unsqueeze(-1), den


def _floor_ratio(plain, shifted, v: torch.Tensor, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(|Δout| / floor, |Δout|) between two runs of :func:`_attention_with`, the floor twice the sum of their
    rounding bounds (proofs/stabiliser_legality.md, item 5); a shifted run whose bound is not finite has none."""
    (pq0, pk0, out0, den0), (pq1, pk1, out1, den1) = plain, shifted
    floor = 2 * (_bound(pq0, pk0, v, out0, den0, delta) + _bound(pq1, pk1, v, out1, den1, delta).nan_to_num(math.inf))
    diff = (out1 - out0).abs()
    return torch.where(floor > 0, diff / floor, torch.where(diff > 0, math.inf, 0.0)), diff


def _stabiliser_blind(k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> str | None:
    """Why no shift computed from the key features can change non-causal attention at these inputs, or None: in every
    sequence at most one key is kept, or the kept values are all equal (each output is that value), or the kept keys
    are all equal (their log features, and so any shift computed from them alone, are equal: the weights stay equal; a
    shift by position is not such a shift, and fails the comparison). Read only where the comparison passed. A review
    found the illegal per-key shift passing at v = 0, one key, equal keys, and a mask keeping one key. Keys and values
    that broadcast against each other (keys shared by the heads) are read as broadcast."""
    length = k.shape[-2]
    lead = torch.broadcast_shapes(k.shape[:-2], v.shape[:-2])
    kb = k.expand(*lead, length, k.shape[-1]).reshape(-1, length, k.shape[-1])
    vb = v.expand(*lead, length, v.shape[-1]).reshape(-1, length, v.shape[-1])
    if mask is None:
        keep = torch.ones(kb.shape[:2], dtype=torch.bool, device=kb.device)
    else:  # [B, L] (or [L] unbatched), broadcast over any head dimensions between
        keep = mask.reshape(*(lead[:1] if lead else ()), *([1] * max(len(lead) - 1, 0)), length)
        keep = keep.expand(*lead, length).reshape(-1, length)
    whys = set()
    for b in range(kb.shape[0]):
        kept_k, kept_v = kb[b][keep[b]], vb[b][keep[b]]
        if kept_k.shape[0] <= 1:
            whys.add("at most one key kept")
        elif bool((kept_v == kept_v[:1]).all()):
            whys.add("every kept value equal")
        elif bool((kept_k == kept_k[:1]).all()):
            whys.add("every kept key equal")
        else:
            return None
    return ", ".join(sorted(whys)) + (" in every sequence" if kb.shape[0] > 1 else "")


def attention_convergence_check(
    estimator_name: str | Callable[[int], object],
    *,
    dim: int = 8,
    n: int = 16,
    ms: Sequence[int] = (16, 64, 256, 1024, 4096),
    draws: int = 64,
    seed: int,
    alpha: float = 1e-6,
    input_std: float = 0.3,
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    stabilise=True,
) -> CheckResult:
    """Test H₀: MSE(linear attention with m features vs softmax attention) ∝ 1/m (slope −1 in log–log).

    ``estimator_name``: a registry name (built with ``E.get(name, dim, m)`` for each m) or a factory
    ``m -> estimator`` whose ``.draw(generator, batch=R)`` gives R independent feature maps in one tensor op
    (planted defects go through this). ``inputs``: ``(q, k, v)`` of shape ``[n, d]``, else q, k ~ N(0,
    input_std²·I) and v ~ N(0, I) from ``seed``. q and k are scaled by d^{-1/4} for the features; the
    reference is :func:`softmax_attention` on the unscaled inputs. ``stabilise`` is passed to
    :func:`linear_attention` (a callable plants a stabiliser). On the default grid m = 16…4096 the remainder rule
    often keeps three counts (none of 40 default inputs was refused for iid or ORF features); ``ms`` up to 16384 keeps
    four or more (peak memory ≈ 0.75 GB at 64 draws, 16× the CPU time of the default grid).
    """
    dim = check_int(dim, "dim", minimum=1)
    n = check_int(n, "n", minimum=1)
    r = check_int(draws, "draws", minimum=2)
    alpha = check_alpha(alpha)
    ms = [check_int(m, "ms[i]", minimum=1) for m in ms]
    if len(set(ms)) < 2:
        raise ValueError(f"ms must hold at least two distinct feature counts, got {ms}")
    g = generator_for(seed)
    if inputs is None:
        std = check_real(input_std, "input_std", minimum=0.0, strict_min=True)
        q = torch.randn(n, dim, generator=g, dtype=torch.float64) * std
        k = torch.randn(n, dim, generator=g, dtype=torch.float64) * std
        v = torch.randn(n, dim, generator=g, dtype=torch.float64)
    else:
        q, k, v = inputs
        check_points(q, "inputs[0]", dim=dim)
        check_points(k, "inputs[1]", dim=dim)
        check_points(v, "inputs[2]")
        if not (q.dim() == k.dim() == v.dim() == 2):
            raise ValueError("inputs must be (q, k, v) of shape [n, d] each")
    name = (
        estimator_name if isinstance(estimator_name, str) else getattr(estimator_name, "__name__", "custom")
    )
    label = f"attention MSE ∝ 1/m: {name}"
    base = dict(name=label, claim="attention rate", alpha=alpha, sample_size=r * len(ms), seed=int(seed))
    if r < MIN_DRAWS:
        return CheckResult.refusal(
            f"{r} draws per m is too few for a variance of the MSE (need ≥ {MIN_DRAWS})",
            **base,
        )
    exact_inputs = _exact_refusal(q, k, v, base)  # one token, equal values or equal keys: errors are rounding
    if exact_inputs is not None:
        return exact_inputs
    factory = _factory(estimator_name, dim, torch.float64)
    exact = softmax_attention(q, k, v)
    s = dim**-0.25
    qs, ks, vs = (q * s).expand(r, *q.shape), (k * s).expand(r, *k.shape), v.expand(r, *v.shape)
    errors = []
    for m in ms:
        fm = factory(m).draw(g, batch=r)
        errors.append(linear_attention(qs, ks, vs, fm, stabilise=stabilise) - exact)
    square = float((exact**2).mean())
    return mse_slope_check(ms, errors, alpha=alpha, base=base, regime=(q, k),
                           magnitude=square if 0 < square < math.inf else None)


TAIL_WEIGHT = "max exp(‖q̃ + k̃‖²)"  # how ρ is computed, as messages name it: softmax reference
KERNEL_TAIL_WEIGHT = "max κ(q, q)κ(k, k)κ(q, k)²"  # a kernel reference


def tail_weight(q: torch.Tensor, k: torch.Tensor, kernel: Callable | None = None) -> float:
    """ρ = max_{i,j} exp(‖q̃_i + k̃_j‖²) with x̃ = x·d^{-1/4} (the last axis of ``q``, ``k`` is d; leading axes are
    flattened): the relative second moment E g²/SM² of one positive feature g of the pair (q_i, k_j)
    (proofs/positive_variance.md), i.e. exp(σ²) for its log-normal law with σ² = ‖q̃_i + k̃_j‖². Capped at e⁷⁰⁹
    where it overflows float64.

    ``kernel``: a reference κ(x, y) → [n, n'] instead of softmax; ``q``, ``k`` are then [B, L, d] (or [L, d]) and
    ρ = max(1, max_{b,i,j} κ(q_bi, q_bi)·κ(k_bj, k_bj)·κ(q_bi, k_bj)²), the same quantity for every exponential
    dot-product kernel exp(s·xᵀy) (softmax at any temperature: ‖x + y‖² = ‖x‖² + ‖y‖² + 2xᵀy) and at most 1, leaving
    out nothing, for a kernel bounded by 1 on its diagonal (proofs/attention_audit.md, item 11(b))."""
    if kernel is not None:
        return _kernel_tail_weight(q, k, kernel)
    d = q.shape[-1]
    s = d**-0.25
    qs, ks = q.reshape(-1, d).double() * s, k.reshape(-1, d).double() * s
    z2 = ((qs[:, None, :] + ks[None, :, :]) ** 2).sum(-1)
    return math.exp(min(float(z2.max()), 709.0)) if z2.numel() else 1.0


_CAP = math.exp(709.0)  # a tail weight beyond float64: no feature count reaches it


def _largest_over_sequences(q: torch.Tensor, k: torch.Tensor, kernel: Callable, shift: float) -> float:
    """max(1, max_{b,i,j} κ(q_bi, s·q_bi)·κ(k_bj, s·k_bj)·κ(q_bi, k_bj)^{2·sign}) over the sequences b of ``q``, ``k``
    ([B, L, d] or [L, d]) with s = ``shift`` (+1: :func:`tail_weight`'s ρ_κ; −1, the diagonal terms dividing:
    :func:`unseen_tail_weight`'s ρ_u); capped at e⁷⁰⁹, which it is also where a value is not finite or, for s = −1,
    a κ(x, −x) is not positive (nothing known)."""
    qs, ks = (t.detach().double().reshape(-1, *t.shape[-2:]) for t in (q, k))
    top = 1.0
    for qb, kb in zip(qs, ks, strict=True):
        cross = torch.as_tensor(kernel(qb, kb), dtype=torch.float64)
        own_q = torch.diagonal(torch.as_tensor(kernel(qb, shift * qb), dtype=torch.float64))
        own_k = torch.diagonal(torch.as_tensor(kernel(kb, shift * kb), dtype=torch.float64))
        if shift > 0:
            weight = own_q[:, None] * own_k[None, :] * cross * cross
        else:
            if not (bool((own_q > 0).all()) and bool((own_k > 0).all())):
                return _CAP
            weight = cross * cross / (own_q[:, None] * own_k[None, :])
        if not bool(torch.isfinite(weight).all()):
            return _CAP
        top = max(top, float(weight.max()))
    return min(top, _CAP)


def _kernel_tail_weight(q: torch.Tensor, k: torch.Tensor, kernel: Callable) -> float:
    return _largest_over_sequences(q, k, kernel, 1.0)


def unseen_tail_weight(q: torch.Tensor, k: torch.Tensor, kernel: Callable) -> float:
    """ρ_u = max_{b,i,j} κ(q_bi, k_bj)² / (κ(q_bi, −q_bi)·κ(k_bj, −k_bj)): the tail weight exp(s‖q + k‖²) of positive
    features for every kernel a(x)a(y)·exp(s·xᵀy) with a radial (softmax at any temperature, the Gaussian kernel
    a(x) = e^{−‖x‖²/2}), which :func:`tail_weight` sees only when a = 1; capped at e⁷⁰⁹, and e⁷⁰⁹ where a denominator
    is not positive (nothing known). With a kernel reference the features are unseen, and a slope that rejects on
    feature counts below ρ_u² is refused, not failed (proofs/attention_audit.md, item 11(c))."""
    return _largest_over_sequences(q, k, kernel, -1.0)


def asymptotic_grid(ms: Sequence[int], rho: float) -> list[int]:
    """The feature counts of ``ms`` in the regime of the 1/m law for tail weight ``rho`` (:func:`tail_weight`):
    m ≥ ρ², the threshold of the central limit theorem for sums of m iid log-normal terms of log-variance σ²
    (m ≥ e^{2σ²}; Ben Arous, Bogachev & Molchanov 2005; proofs/attention_audit.md, item 11)."""
    return [m for m in ms if m >= rho * rho]


def regime_refusal(ms: Sequence[int], kept: Sequence[int], rho: float, base: dict,
                   formula: str = TAIL_WEIGHT) -> CheckResult | None:
    """A refusal when fewer than :data:`MIN_POINTS` feature counts of ``ms`` reach m ≥ ρ² (:func:`asymptotic_grid`);
    ``formula`` names how ρ was computed (:data:`TAIL_WEIGHT`, or :data:`KERNEL_TAIL_WEIGHT` for a kernel)."""
    if len(set(kept)) >= MIN_POINTS:
        return None
    return CheckResult.refusal(
        f"the inputs are too large for the 1/m law on this grid: tail weight ρ = {formula} = {rho:.3g} "
        f"needs m ≥ ρ² = {rho * rho:.3g} (the log-normal features' central limit regime) at {MIN_POINTS} feature "
        f"counts at least, and only {list(kept)} of {list(ms)} reach it: raise num_features or lower the input scale"
        + (" (a kernel that normalises its inputs, by a LayerNorm or to unit length, keeps its ρ at any input scale: "
           "there only num_features helps)" if formula == KERNEL_TAIL_WEIGHT else ""),
        **base,
    )


def _non_finite(ms: Sequence[int], errors: Sequence[torch.Tensor], base: dict) -> CheckResult | None:
    """A failure naming the first non-finite error (draw, position, m), if any (proofs/attention_audit.md, item 12)."""
    for m, err in zip(ms, errors, strict=True):
        bad = ~torch.isfinite(err)
        if bool(bad.any()):
            idx = [int(i) for i in bad.nonzero()[0]]
            where = f"position {idx[-2]}" if err.dim() >= 3 else f"entry {idx[1:]}"
            return CheckResult.certain_failure(
                "exhaustive",
                f"the output is not finite at {where} (draw {idx[0]}, m = {m}; {int(bad.sum())} of "
                f"{err.numel()} errors): no MSE exists",
                **base,
            )
    return None


PLATEAU_MISS = 0.5  # a slope row passes only where a flat MSE (slope 0) would be rejected at least half the time


def mse_slope_check(
    ms: Sequence[int],
    errors: Sequence[torch.Tensor],
    *,
    alpha: float,
    base: dict,
    regime: tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, Callable] | None = None,
    floor: float = 0.0,
    magnitude: float | None = None,
) -> CheckResult:
    """The curvature-corrected slope test of the module docstring on the errors out − exact: ``errors[i]`` is
    ``[R, ..., L, d_v]``, R independent draws at m = ``ms[i]`` (each draw's MSE is its mean square). ``base`` carries
    the row's name, claim, α, sample size and seed. Fails when an error is not finite (the output at that position
    is NaN or infinite: no MSE exists), naming the first such position. ``regime``: the unscaled ``(q, k)`` of a
    softmax reference, or ``(q, k, kernel)`` for a kernel reference (:func:`tail_weight`); the feature counts below ρ²
    (:func:`asymptotic_grid`) are left out, the smallest further
    ones while the remainder bound D (:func:`remainder_bound`) exceeds the standard error, and the row is refused
    when fewer than three remain; if D still exceeds it, a slope that rejects with D subtracted fails, and one that
    does not is refused. Refused when the relative standard error of an MSE exceeds :data:`MAX_REL_SE`.
    ``floor``: a bound R on what rounding adds to each MSE (outputs computed in a half-precision format): it raises
    log MSE(m) by at most log(1 + R/(MSE(m) − R)), which moves ĝ = Σ L_m y_m by at most Σ_{L_m > 0} L_m times that
    (:func:`rounding_bound`), added to D (no m is left out for it: the largest, where rounding weighs, is also where a
    bias that does not shrink shows).
    ``magnitude``: the mean square B of the exact outputs. A pass must then resolve an error as large as the outputs
    that does not fall with m: adding B to the null law's MSEs C/m (C fitted to the measured ones) moves ĝ by
    Δ_B = Σ_m L_m log(1 + Bm/C); where (Δ_B − D)/SE stays below the z a rejection needs (the plateau rule's power), the
    Monte Carlo noise at the largest m hides such a bias and the row is refused, not passed (item 13(j)).
    Proof: proofs/attention_audit.md, item 13."""
    alpha = check_alpha(alpha)
    ms = [check_int(m, "ms[i]", minimum=1) for m in ms]
    if len(errors) != len(ms):
        raise ValueError(f"errors must hold one tensor per m: {len(ms)} feature counts, {len(errors)} tensors")
    for m, e in zip(ms, errors, strict=True):
        if not isinstance(e, torch.Tensor) or not e.is_floating_point():
            got = e.dtype if isinstance(e, torch.Tensor) else type(e).__name__
            raise ValueError(f"errors at m = {m} must be a real floating-point tensor [R, ...], got {got}")
    floor = check_real(floor, "floor", minimum=0.0)
    if magnitude is not None:
        magnitude = check_real(magnitude, "magnitude", minimum=0.0, strict_min=True)
    failed = _non_finite(ms, errors, base)
    if failed is not None:
        return failed
    note, rho, unseen = "", None, None
    if regime is not None and len(regime) == 3:
        unseen = unseen_tail_weight(*regime)
    if regime is not None:
        rho = tail_weight(*regime)
        formula = TAIL_WEIGHT if len(regime) == 2 else KERNEL_TAIL_WEIGHT
        kept = asymptotic_grid(ms, rho)
        refused = regime_refusal(ms, kept, rho, base, formula)
        if refused is not None:
            return refused
        if len(kept) < len(ms):
            errors = [e for m, e in zip(ms, errors, strict=True) if m in kept]
            note = f"m < ρ² = {rho * rho:.3g} left out (ρ = {formula}); "
            ms = kept
    if len(set(ms)) < MIN_POINTS:
        return CheckResult.refusal(
            f"the curvature-corrected fit needs {MIN_POINTS} distinct feature counts, got {list(ms)}", **base
        )
    for m, e in zip(ms, errors, strict=True):
        if e.dim() < 1 or e.shape[0] == 0:
            raise ValueError(f"errors at m = {m} must have shape [R, ...] with R ≥ 1 draws, got {tuple(e.shape)}")
    # the slope of log MSE does not depend on the errors' unit: errors far from 1 are rescaled by one power of two
    # (exactly), and with them the rounding bound on each MSE; errors of 10⁸⁰ overflowed MSE² (an OverflowError) and
    # errors of 10⁻⁸⁰ made it 0 (a ZeroDivisionError), where squared errors beyond float64 read "tails too heavy"
    # (the checks' one rule, binade_exponents: only outside 2^±40)
    shift = -int(binade_exponents(torch.stack([e.double().abs().max() for e in errors]).max()))
    raw = [torch.ldexp(e.double(), torch.tensor(-shift)) for e in errors]
    floor = math.ldexp(floor, -2 * shift)
    if shift:
        note += f"errors in units of 2^{shift} (MSEs of 2^{2 * shift}); "
    errors = [(e**2).reshape(e.shape[0], -1).mean(1) for e in raw]
    for m, e, sq in zip(ms, raw, errors, strict=True):  # a range no unit holds: a scale problem, not heavy tails
        here = float(e.abs().max())
        if not bool(torch.isfinite(sq).all()) or (here > 0 and not float(sq.max()) > 0):
            return CheckResult.refusal(
                f"the squared errors at m = {m} {'overflow' if here > 1 else 'underflow'} float64 beside the other "
                f"m's (errors up to {here:.3g}); {note}", **base)
    r = min(int(e.numel()) for e in errors)
    if r < MIN_DRAWS:  # check_attention took draws ≥ 2: at 4–16 draws correct maps were rejected 3–7× too often
        return CheckResult.refusal(  # in the tail (α′ = 10⁻³), as attention_convergence_check's 16 draws were
            f"{r} draws at some m are too few for the variance of an MSE (need ≥ {MIN_DRAWS}); {note}", **base)
    mse, rel_var = [], []
    for err in errors:
        mean = float(err.mean())
        mse.append(mean)
        rel_var.append(float(err.var()) / err.numel() / mean**2 if mean > 0 else math.inf)
    worst = math.sqrt(max(rel_var))
    detail = ", ".join(f"MSE(m={m}) = {e:.4g}" for m, e in zip(ms, mse, strict=True))
    if not worst <= MAX_REL_SE:
        return CheckResult.refusal(
            f"relative SE of an MSE {worst:.3g} > {MAX_REL_SE} (tails too heavy for {r} draws); {note}{detail}",
            **base,
        )
    if not min(rel_var) > 0:
        return CheckResult.refusal(
            f"every draw at some m has the same MSE: no Monte Carlo error to weigh the fit with; {note}{detail}", **base
        )
    order = np.argsort(ms, kind="stable")
    ms, v = [int(ms[i]) for i in order], np.asarray(rel_var)[order]
    y = np.log(np.asarray(mse)[order]) + 0.5 * v
    dropped = []
    mse_sorted = [mse[i] for i in order]
    while True:
        g, se, row, chi2 = curvature_fit(ms, y, v)
        bound = 0.0 if rho is None else remainder_bound(ms, row, rho)
        if bound <= se or len(set(ms[1:])) < MIN_POINTS:
            break
        dropped.append(ms[0])
        ms, y, v, mse_sorted = ms[1:], y[1:], v[1:], mse_sorted[1:]
    if dropped:
        note += f"m = {dropped} dropped (remainder bound D > SE there); "
    # the outputs' rounding: added to D, never by leaving out the largest m, where a bias that does not shrink shows
    by_rounding = rounding_bound(mse_sorted, row, floor)
    if by_rounding > 0:
        note += f"the outputs' rounding (up to {floor:.3g} of each MSE) adds {by_rounding:.3g} to D; "
    remainder, bound = bound, bound + by_rounding
    z = (g + 1.0 - bound) / se
    p = float(stats.norm.sf(z))
    # D > SE costs power, not validity (item 13(c) holds for any D that bounds the remainder): a slope that still
    # exceeds −1 + D significantly fails; only a non-rejection is refused (a flat MSE, a large bias, has a tiny SE)
    if not bound <= se and not p <= alpha:
        what = "on the O(m⁻²) remainder" + (" and the outputs' rounding" if by_rounding > 0 else "")
        return CheckResult.refusal(
            f"the bound D = {bound:.3g} {what} exceeds the standard error {se:.3g} of the slope even "
            f"on m = {ms}, and the slope {g:.4f} does not exceed −1 + D significantly: "
            + ("the outputs' format rounds them about as much as the Monte Carlo error at the largest m (a finer "
               "output format tests the law; checks=[..., 'bias'] tests a bias beyond the format's rounding)"
               if by_rounding > remainder else
               "raise num_features (or lower the input scale)")
            + f"; {note}{detail}",
            **base,
        )
    if p <= alpha and unseen is not None and not ms[0] >= unseen * unseen:
        return CheckResult.refusal(
            f"the slope {g:.4f} ± {se:.4f} exceeds −1 (z = {z:.3g}), but with a kernel reference the features are "
            f"unseen and m = {ms[0]} is below ρ_u² = {unseen * unseen:.3g} (ρ_u = max κ(q, k)²/(κ(q, −q)κ(k, −k)), the "
            "tail weight of positive features for this kernel): a bias that does not shrink and the pre-asymptotic "
            "regime look alike there; checks=[..., 'bias'] tests the bias, or lower the input scale (raise "
            f"num_features); {note}{detail}", **base)
    # a pass means something only where the grid could have rejected an MSE that does not fall at all (slope 0):
    # a narrow grid, (3000, 3500, 4096), passed a flat MSE at 5 of 5 seeds with slope 6.4 ± 3.5
    plateau = (1.0 - bound) / se
    needed = float(stats.norm.isf(alpha) + stats.norm.isf(PLATEAU_MISS))
    if not p <= alpha and not plateau >= needed:
        return CheckResult.refusal(
            f"the slope's standard error {se:.3g} on m = {ms} is too large to tell the 1/m law from an MSE that does "
            f"not fall (a slope of 0 would give z = {plateau:.3g} on average, below the {needed:.3g} a rejection "
            f"needs): widen the grid of m or draw more; slope {g:.4f}; {note}{detail}", **base)
    if not p <= alpha and magnitude is not None:
        # ... and one that is wrong by as much as the outputs, beside noise that falls as 1/m (a review's function
        # returned the values' mean plus noise σ/√m: a 7 % bias under σ ≥ 5 passed). Read on the null law's MSEs,
        # C/m with log C the weighted mean of log(m·MSE_m), not on the measured ones (whose noise moves ĝ, and with it
        # a shift read from them: Σ L_m log(B/MSE_m) = −ĝ once B dwarfs them); in logs, B in the MSEs' unit
        log_m = np.log(np.asarray(ms, dtype=np.float64))
        weight = 1.0 / np.asarray(v, dtype=np.float64)
        log_c = float((weight * (np.log(np.asarray(mse_sorted, dtype=np.float64)) + log_m)).sum() / weight.sum())
        log_b = math.log(magnitude) - 2 * shift * math.log(2.0)
        moved = float((row * np.logaddexp(0.0, log_b - (log_c - log_m))).sum())
        shown = (moved - bound) / se
        if not shown >= needed:
            return CheckResult.refusal(
                f"the slope cannot show an error as large as the outputs that does not fall with m: their mean square "
                f"{magnitude:.3g} added to the MSEs of the 1/m law fitted to these moves the slope by {moved:.3g}, "
                f"z = {shown:.3g} on average with "
                f"D = {bound:.2g}, below the {needed:.3g} a rejection needs (the Monte Carlo noise at m = {ms[-1]} "
                f"hides it): raise num_features or draw more; slope {g:.4f}; {note}{detail}", **base)
    return CheckResult(
        statistic=z,
        p_value=p,
        effect_size=abs(g + 1.0),
        method="curvature-corrected wls slope of log MSE, one-sided (delta-method SE)",
        passed=p > alpha,
        detail=f"{note}slope {g:.4f} ± {se:.4f} (H₀: −1, H₁: > −1), remainder bound D = {bound:.2g}, residual χ² "
        f"{chi2:.3g} on {len(ms) - MIN_POINTS} df; {detail}"
        + (f"; the MSE changes by less than 2× from m = {ms[0]} to {ms[-1]}, where 1/m predicts "
           f"{ms[-1] / ms[0]:.3g}×: an error that does not fall with m, a bias of the outputs (the same error at "
           f"every m: the exact rows name where) or features that do not follow m (does attention(m, generator) "
           f"draw m features?)"
           if p <= alpha and min(mse) >= 0.5 * max(mse) else ""),
        **base,
    )


# ---------------------------------------------------------------------------------------------------
# Stabiliser legality
# ---------------------------------------------------------------------------------------------------


def _bound(phi_q, phi_k, v, out, den, delta):
    """First-order rounding bound of one evaluation of non-causal linear attention (module docstring)."""
    eps = torch.finfo(torch.float64).eps
    nk, dfeat = phi_k.shape[-2], phi_k.shape[-1]
    big_n = nk + dfeat + 1
    gamma = big_n * eps / (1 - big_n * eps)
    aq, ak = phi_q.abs(), phi_k.abs()
    mag = aq @ (ak.transpose(-1, -2) @ v.abs()) + out.abs() * (aq @ ak.sum(-2).unsqueeze(-1))
    return (gamma + 2 * delta) * mag / den.abs().unsqueeze(-1) + eps * out.abs()


def stabiliser_legality_check(
    feature_map,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor | None,
    stabiliser: Callable,
    *,
    name: str,
    seed: int,
    mask=None,
    alpha: float = 1e-6,
) -> CheckResult:
    """Pass iff attention with ``stabiliser`` (on the logs) equals attention without it to the rounding floor.

    Computed in float64 (inputs are promoted), non-causal. ``v=None`` draws N(0, I) values from ``seed``.
    Refused (not passed) when the unstabilised attention is not finite: there is nothing to compare with.
    """
    if not callable(stabiliser):
        raise TypeError(
            f"stabiliser must be a callable (log φ_q, log φ_k) -> (log φ_q', log φ_k'), got {stabiliser!r}"
        )
    q = check_points(q, "q").double()
    k = check_points(k, "k", dim=q.shape[-1]).double()
    if v is None:
        g = generator_for(seed)
        v = torch.randn(*k.shape[:-1], q.shape[-1], generator=g, dtype=torch.float64)
    v = check_points(v, "v").double()
    mask = _check_mask(mask, k)
    res = _resolve(feature_map, q, k, mask, False)
    with torch.no_grad():
        logs_q, logs_k = res.log_query, res.log_key
        if logs_q is None:
            raise ValueError("feature_map must provide log features (log_query/log_key) to test a stabiliser")
        size = max(float(logs_q(q)[0].abs().nan_to_num(0.0, 0.0, 0.0).max()), 0.0) + max(
            float(logs_k(k)[0].abs().nan_to_num(0.0, 0.0, 0.0).max()), 0.0
        )
        runs = [_attention_with(res, q, k, v, mask, stab) for stab in (False, stabiliser)]
    eps = torch.finfo(torch.float64).eps
    base = dict(name=f"stabiliser legality: {name}", claim="stabiliser legal", alpha=alpha, seed=int(seed))
    out0, out1 = runs[0][2], runs[1][2]
    if not bool(torch.isfinite(out0).all()):
        return CheckResult.refusal(
            "attention without the stabiliser is not finite: nothing to compare with",
            sample_size=out0.numel(),
            **base,
        )
    delta = eps * (2 * size + 2)
    ratio, diff = _floor_ratio(runs[0], runs[1], v, delta)
    finite = bool(torch.isfinite(out1).all())
    stat = float(ratio.max()) if finite else math.inf
    passed = finite and stat <= 1.0
    scale = max(float(out0.abs().max()), torch.finfo(torch.float64).tiny)
    idx = tuple(int(i) for i in torch.nonzero(ratio == ratio.max())[0]) if finite else ()
    blind = _stabiliser_blind(k, v, mask) if passed else None
    if blind is not None:  # agreement where a per-key shift could not show is no pass (a difference still fails)
        return CheckResult.refusal(f"no shift computed from the key features can change attention at these inputs "
                                   f"({blind}): an illegal per-key stabiliser would agree as well; use keys and "
                                   "values that vary", sample_size=out0.numel(), **base)
    if passed:  # the control: the planted illegal shift by each key's largest log feature must show at these inputs
        with torch.no_grad():
            planted = _attention_with(res, q, k, v, mask, per_key_max)
        shown = float(_floor_ratio(runs[0], planted, v, delta)[0].max()) if bool(
            torch.isfinite(planted[2]).all()) else math.inf
        if not shown > 1.0:
            return CheckResult.refusal(
                f"the planted illegal stabiliser per_key_max (each key shifted by its own largest log feature) agrees "
                f"with attention at these inputs as well (max |Δout| / floor = {shown:.3g}): its shift is the same "
                "for every kept key (keys whose log features are a permutation of each other, such as k and −k "
                "under a map symmetric in ±k), so an illegal per-key stabiliser could pass here; use keys whose "
                "features differ", sample_size=out0.numel(), **base)
    return CheckResult(
        statistic=stat,
        p_value=1.0 if passed else 0.0,
        effect_size=float(diff.max()) / scale if finite else math.inf,
        sample_size=out0.numel(),
        method="rounding floor",
        passed=passed,
        detail=(
            f"max |Δout| / floor = {stat:.3g} at {idx}; max |Δout| = {float(diff.max()):.3g}"
            if finite
            else "attention with the stabiliser is not finite"
        ),
        **base,
    )
