r"""Closed-form variances, bounds and optimal parameters: one function per formula (MATH.md §2, §4).

Every function names the proof that derives it. Variances are those of one draw's estimate φ(x)ᵀφ(y) built
from m iid frequencies (the estimate from all D features of that draw). Arguments are broadcastable tensors;
the general functions take the law's transforms (ψ, log M) so that they hold for every law with a closed form,
and the ``softmax_*``/``gaussian_*`` functions are their specialisations to ω ~ N(0, I) exactly as MATH.md §4
states them (the tests check that the two agree and that both match a direct numerical second moment).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special

from ._validation import check_int, check_real, finite_result

# ---------------------------------------------------------------------------------------------------
# General laws (ψ = characteristic function, M = moment generating function of the frequency law)
# ---------------------------------------------------------------------------------------------------


def _like(value, ref) -> torch.Tensor:
    """``value`` as a tensor in the dtype and device of the tensor ``ref`` (a Python float would otherwise
    become a float32 tensor and cost float64 callers half their digits)."""
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    return torch.as_tensor(value, dtype=torch.float64)


def _check_char_values(**values) -> None:
    """Real parts of a characteristic function lie in [−1, 1] (up to the rounding of its evaluation): a ψ of 2 gave a
    variance of −1."""
    for name, v in values.items():
        v = torch.as_tensor(v)
        limit = 1 + 64 * (torch.finfo(v.dtype).eps if v.is_floating_point() else 0.0)
        if not bool((v.abs() <= limit).all()):  # NaN fails too
            raise ValueError(f"{name} must hold values Re ψ of a characteristic function, in [-1, 1]")


def _log_abs_expm1(delta: torch.Tensor) -> torch.Tensor:
    """log|e^δ − 1|, finite for every finite δ ≠ 0 (−∞ at δ = 0): δ + log(1 − e^{−δ}) for δ > 0 (no overflow of
    e^δ), log(1 − e^{δ}) for δ < 0 (no cancellation near 0). Its gradient is finite everywhere (0 at δ = 0)."""
    a = delta.abs()
    nonzero = a > 0
    safe = torch.where(nonzero, a, torch.ones_like(a))  # no log(0) in a branch that autograd also differentiates
    log_one_minus = torch.log(-torch.expm1(-safe))  # log(1 − e^{−|δ|})
    out = torch.where(delta > 0, safe + log_one_minus, log_one_minus)
    return torch.where(nonzero, out, torch.full_like(out, -math.inf))


def _in_range(t: torch.Tensor) -> tuple[float, float]:
    """(log of the smallest normal number, log of the largest) of ``t``'s floating dtype."""
    info = torch.finfo(t.dtype if t.is_floating_point() else torch.float64)
    return math.log(info.tiny), math.log(info.max)


def _exp_expm1(log_scale: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """e^{log_scale}·(e^δ − 1), i.e. e^{log_scale + δ} − e^{log_scale} without the difference of two nearly equal
    exponentials (a variance E g² − (E g)² from log E g² and log (E g)²: relative accuracy where it is tiny against
    (E g)²): e^{log_scale}·expm1(δ) where both factors are normal numbers, else in logs, sign(δ)·e^{log_scale +
    log|expm1 δ|}, where either factor alone would over- or underflow but the product does not."""
    log_scale, delta = torch.broadcast_tensors(torch.as_tensor(log_scale), torch.as_tensor(delta))
    lo, hi = _in_range(delta)
    direct_ok = (log_scale > lo) & (log_scale < hi) & (delta < hi)
    zero = torch.zeros_like(delta)
    direct = torch.exp(torch.where(direct_ok, log_scale, zero)) * torch.expm1(torch.where(direct_ok, delta, zero))
    in_logs = torch.sign(delta) * torch.exp(log_scale + _log_abs_expm1(delta))
    return torch.where(direct_ok, direct, in_logs)


def _exp_cosh_minus_one(log_scale: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """e^{log_scale}·(cosh c − 1) = e^{log_scale}·2 sinh²(c/2) (no cancellation near c = 0), in logs where a factor
    alone would over- or underflow: log(cosh c − 1) = 2 log|e^{|c|} − 1| − |c| − log 2."""
    log_scale, c = torch.broadcast_tensors(torch.as_tensor(log_scale), torch.as_tensor(c))
    lo, hi = _in_range(c)
    direct_ok = (log_scale > lo) & (log_scale < hi) & (c.abs() < hi)
    zero = torch.zeros_like(c)
    half = torch.where(direct_ok, c, zero) / 2
    direct = torch.exp(torch.where(direct_ok, log_scale, zero)) * 2 * torch.sinh(half) ** 2
    in_logs = torch.exp(log_scale + 2.0 * _log_abs_expm1(c.abs()) - c.abs() - math.log(2.0))
    return torch.where(direct_ok, direct, in_logs)


@finite_result("psi_tau", "psi_2tau", "log_weight")
def trig_paired_variance(psi_tau, psi_2tau, num_features: int, log_weight=0.0) -> torch.Tensor:
    r"""Paired trig features: Var = w(x)²w(y)² · [(1 + Re ψ(2τ))/2 − Re ψ(τ)²] / m.

    One frequency contributes cos(ωᵀτ), with E cos² = (1 + E cos 2ωᵀτ)/2. ``log_weight`` is log w(x)w(y).
    For ω ~ N(0, σ⁻²I), Re ψ(2τ) = k⁴ and the bracket is (1 − k²)²/2. Proof: proofs/trig_variance.md.
    """
    one = torch.ones_like(psi_tau)  # ψ(0) = 1: the covariance at y' = y
    return trig_paired_covariance(psi_tau, psi_tau, psi_2tau, one, num_features, log_weight)


@finite_result("psi_tau", "psi_2tau")
def trig_phase_variance(psi_tau, psi_2tau, feature_dim: int) -> torch.Tensor:
    r"""Trig features with random phase, D of them: Var = (1 + Re ψ(2τ)/2 − Re ψ(τ)²) / D.

    2cos(a)cos(b) = cos(a − b) + cos(a + b); the phase term has mean 0 and second moment 1/2.
    Proof: proofs/trig_variance.md.
    """
    return trig_phase_covariance(psi_tau, psi_tau, psi_2tau, torch.ones_like(psi_tau), feature_dim)


@finite_result("log_hh", "log_m_z", "log_m_2z")
def positive_variance(log_hh, log_m_z, log_m_2z, num_features: int) -> torch.Tensor:
    r"""Positive features h(x)e^{ωᵀx}: Var = [h(x)²h(y)² M(2z) − (h(x)h(y) M(z))²] / m, z = x + y.

    Arguments are logs: log h(x)h(y), log M(z), log M(2z). Proof: proofs/positive_variance.md.
    """
    return positive_covariance(log_hh, log_m_z, log_hh, log_m_z, log_m_2z, num_features)


@finite_result("log_hh", "log_m_z", "log_m_neg_z", "log_m_2z", "log_m_neg_2z")
def hyperbolic_variance(log_hh, log_m_z, log_m_neg_z, log_m_2z, log_m_neg_2z, num_features: int):
    r"""Hyperbolic features h(x)[e^{ωᵀx}, e^{−ωᵀx}]/√2: one frequency gives h(x)h(y) cosh(ωᵀz), so

    Var = h²h²·[(M(2z) + M(−2z) + 2)/4 − ((M(z) + M(−z))/2)²] / m. Proof: proofs/positive_variance.md.
    """
    zero = torch.zeros_like(log_m_z)  # log M(0) = 0: the covariance at y' = y
    return hyperbolic_covariance(
        log_hh, log_m_z, log_m_neg_z, log_hh, log_m_z, log_m_neg_z, log_m_2z, log_m_neg_2z, zero, zero, num_features
    )


# ---------------------------------------------------------------------------------------------------
# Specialisations to ω ~ N(0, I) (MATH.md §4, as stated there)
# ---------------------------------------------------------------------------------------------------


def _sq(t: torch.Tensor) -> torch.Tensor:
    return (t * t).sum(-1)


@finite_result("k")
def gaussian_kernel_trig_variance(k, num_features: int) -> torch.Tensor:
    """Paired trig features for the Gaussian kernel k = K(x, y): Var = (1 − k²)²/(2m).

    Proof: proofs/trig_variance.md.
    """
    m = check_int(num_features, "num_features", minimum=1)
    kk = torch.as_tensor(k, dtype=k.dtype if isinstance(k, torch.Tensor) else torch.float64)
    if not bool(((kk >= 0) & (kk <= 1)).all()):  # NaN fails too
        raise ValueError("k must be a Gaussian kernel value in [0, 1]")
    return (1.0 - k**2) ** 2 / (2 * m)


def _log_trig_relative(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log(m·Var/SM²) of paired trig features for SM: log(2 sinh²(‖τ‖²/2)) = ‖τ‖² + 2 log(1 − e^{−‖τ‖²}) − log 2."""
    t2 = _sq(x - y)
    return t2 + 2.0 * torch.log(-torch.expm1(-t2)) - math.log(2.0)


def _log_positive_relative(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log(m·Var/SM²) of positive features for SM: log(e^{‖z‖²} − 1) = ‖z‖² + log(1 − e^{−‖z‖²})."""
    z2 = _sq(x + y)
    return z2 + torch.log(-torch.expm1(-z2))


@finite_result("x", "y", points=("x", "y"))
def softmax_trig_variance(x: torch.Tensor, y: torch.Tensor, num_features: int) -> torch.Tensor:
    r"""Paired trig features for SM: (1/2m)·exp(‖z‖²)·SM⁻²·(1 − exp(−‖τ‖²))², i.e. SM² times
    :func:`softmax_trig_relative_variance` (evaluated in log space).

    ``x``, ``y`` of shape ``[..., d]``. Proof: proofs/trig_variance.md.
    """
    m = check_int(num_features, "num_features", minimum=1)
    return torch.exp(2.0 * (x * y).sum(-1) + _log_trig_relative(x, y)) / m


@finite_result("x", "y", points=("x", "y"))
def softmax_trig_relative_variance(x: torch.Tensor, y: torch.Tensor, num_features: int) -> torch.Tensor:
    r"""Var/SM² of paired trig features for SM: 2 sinh²(‖τ‖²/2)/m, a function of τ = x − y alone (finite where SM
    itself underflows). Proof: proofs/trig_variance.md, proofs/sparsity.md item 6."""
    m = check_int(num_features, "num_features", minimum=1)
    return torch.exp(_log_trig_relative(x, y)) / m


@finite_result("x", "y", points=("x", "y"))
def softmax_positive_variance(x: torch.Tensor, y: torch.Tensor, num_features: int) -> torch.Tensor:
    r"""Positive features for SM: (1/m)·exp(‖z‖²)·SM²·(1 − exp(−‖z‖²)), i.e. SM² times
    :func:`softmax_positive_relative_variance` (evaluated in log space). Proof: proofs/positive_variance.md."""
    m = check_int(num_features, "num_features", minimum=1)
    return torch.exp(2.0 * (x * y).sum(-1) + _log_positive_relative(x, y)) / m


@finite_result("x", "y", points=("x", "y"))
def softmax_positive_relative_variance(x: torch.Tensor, y: torch.Tensor, num_features: int) -> torch.Tensor:
    r"""Var/SM² of positive features for SM: (e^{‖z‖²} − 1)/m, a function of z = x + y alone (finite where SM itself
    underflows). Proof: proofs/positive_variance.md, proofs/sparsity.md item 6."""
    m = check_int(num_features, "num_features", minimum=1)
    return torch.exp(_log_positive_relative(x, y)) / m


@finite_result("x", "y", points=("x", "y"))
def softmax_hyperbolic_variance(x: torch.Tensor, y: torch.Tensor, num_features: int) -> torch.Tensor:
    r"""Hyperbolic features for SM: ½(1 − exp(−‖z‖²)) × the positive variance.

    Proof: proofs/positive_variance.md.
    """
    return 0.5 * (-torch.expm1(-_sq(x + y))) * softmax_positive_variance(x, y, num_features)


# ---------------------------------------------------------------------------------------------------
# GERF family (Likhosherstov et al. 2022, "Chefs' Random Tables", Theorem 3.1)
# ---------------------------------------------------------------------------------------------------


def check_gerf_a(a: float, name: str = "A") -> float:
    """A must satisfy 1 − 8A > 0 (finite variance; this also gives 1 − 4A > 0). Proof: proofs/gerf.md."""
    a = check_real(a, name)
    if 1.0 - 8.0 * a <= 0.0:
        raise ValueError(f"{name} must satisfy 1 - 8{name} > 0 (that is {name} < 1/8), got {a}")
    return a


def _gerf_a(a, like: torch.Tensor) -> torch.Tensor:
    """A as a tensor (a number, or a tensor of per-sequence values such as OPRF's A*), checked: 1 − 8A > 0."""
    if isinstance(a, torch.Tensor) and a.numel() > 1:
        if not bool(torch.isfinite(a).all()) or bool((1.0 - 8.0 * a <= 0.0).any()):
            raise ValueError("A must be finite and satisfy 1 - 8A > 0 (that is A < 1/8) everywhere")
        return a.to(like.dtype)
    return torch.as_tensor(check_gerf_a(a), dtype=like.dtype, device=like.device)


@finite_result("x", "y", "a", points=("x", "y"))
def gerf_second_moment_log(x, y, a, s: int, c: float, dim: int) -> torch.Tensor:
    r"""log E[(one-frequency GERF estimate)²] for ω ~ N(0, I), real A < 1/8, ``x``, ``y`` ``[..., d]``.

    s = +1: (1−4A)^d (1−8A)^{−d/2} exp(2C(‖x‖²+‖y‖²) + 2(1−4A)/(1−8A)·‖x+y‖²)  (MATH.md §4).
    s = −1: the estimate is the real part D² e^{2A‖ω‖²+C(‖x‖²+‖y‖²)} cos(√(1−4A) ωᵀτ); its second moment is
    (1−4A)^d (1−8A)^{−d/2} e^{2C(‖x‖²+‖y‖²)} · ½(1 + exp(−2(1−4A)/(1−8A)·‖τ‖²)). MATH.md's single formula with
    s = −1 is E[(f₁f₂)²] of the complex features, not the variance of the real estimator (proofs/gerf.md).

    Derivation (s = +1): (f₁f₂)² = D⁴ e^{4A‖ω‖² + 2Bωᵀz + 2C(‖x‖²+‖y‖²)} and E e^{a‖ω‖²+ωᵀu} =
    (1−2a)^{−d/2} e^{‖u‖²/(2(1−2a))} at a = 4A, u = 2Bz, B² = 1−4A, D⁴ = (1−4A)^d.
    (s = −1): cos² = (1 + cos 2βωᵀτ)/2, β² = 1−4A, and
    E e^{a‖ω‖²} cos(ωᵀu) = (1−2a)^{−d/2} e^{−‖u‖²/(2(1−2a))}.
    ``a`` may be a tensor broadcasting against the ``[...]`` output (OPRF's per-sequence A*).
    """
    if s not in (1, -1):
        raise ValueError(f"s must be +1 or -1, got {s}")
    return gerf_cross_moment_log(x, y, y, a, s, c, dim)  # the cross moment at y' = y


@finite_result("x", "y", "a", points=("x", "y"))
def gerf_variance(x, y, a, s: int, c: float, num_features: int, log_kernel) -> torch.Tensor:
    """GERF variance over m iid frequencies: (second moment − K²)/m, K = exp(``log_kernel``).

    Proof: proofs/gerf.md.
    """
    m = check_int(num_features, "num_features", minimum=1)
    second = gerf_second_moment_log(x, y, a, s, c, x.shape[-1])
    return _exp_expm1(2.0 * log_kernel, second - 2.0 * log_kernel) / m  # no cancellation where Var ≪ K²


@finite_result("x", "y", points=("x", "y"))
def oprf_phi_bar(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""φ̄ = mean_{i,j} ‖x_i + y_j‖² = mean‖x‖² + mean‖y‖² + 2 mean(x)ᵀmean(y), means over the sequence
    dimension −2 of ``x`` ``[..., n, d]`` and ``y`` ``[..., n', d]``; returns ``[..., 1, 1]``.

    Evaluated as Var(x) + Var(y) + ‖mean(x) + mean(y)‖² (expand the square; each term is ≥ 0, so rounding
    cannot make φ̄ negative). Proof: proofs/oprf.md.
    """
    mx, my = x.mean(-2, keepdim=True), y.mean(-2, keepdim=True)
    var_x = ((x - mx) ** 2).sum(-1, keepdim=True).mean(-2, keepdim=True)
    var_y = ((y - my) ** 2).sum(-1, keepdim=True).mean(-2, keepdim=True)
    return var_x + var_y + ((mx + my) ** 2).sum(-1, keepdim=True)


@finite_result("phi_bar")
def oprf_optimal_a(phi_bar, dim: int) -> torch.Tensor:
    r"""OPRF's A* (Likhosherstov et al. 2022, Theorem 4.1): with φ̄ = mean‖x‖² + mean‖y‖² + 2 mean(x)ᵀmean(y),

    ρ* = (√((2φ̄ + d)² + 8dφ̄) − 2φ̄ − d)/(4φ̄) = 2d/(√((2φ̄ + d)² + 8dφ̄) + 2φ̄ + d), A* = (1 − 1/ρ*)/8 ≤ 0.

    Derivation: the mean over pairs of log E(f₁f₂)² (s = +1) is, up to terms free of A,
    L(A) = d log(1−4A) − (d/2) log(1−8A) + 2φ̄(1−4A)/(1−8A). With ρ = 1/(1−8A) ∈ (0, ∞) this is
    d log(1+ρ) − (d/2) log ρ + φ̄ρ + const, whose derivative vanishes iff 2φ̄ρ² + (2φ̄+d)ρ − d = 0; the positive
    root is ρ* ≤ 1 (the quadratic is ≥ 0 at ρ = 1), and L → +∞ at both ends, so it is the minimum.
    The second form of ρ* is the same number without the 0/0 at φ̄ = 0 (where ρ* = 1, A* = 0).
    Proof: proofs/oprf.md.
    """
    d = check_int(dim, "dim", minimum=1)
    phi_bar = torch.as_tensor(phi_bar)
    if bool((phi_bar < 0).any()) or not bool(torch.isfinite(phi_bar).all()):
        raise ValueError("phi_bar must be finite and >= 0")
    root = torch.sqrt((2 * phi_bar + d) ** 2 + 8 * d * phi_bar)
    rho = 2 * d / (root + 2 * phi_bar + d)
    return (1.0 - 1.0 / rho) / 8.0


@finite_result("x", "y", points=("x", "y"))
def saderf_optimal_scales(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""SADERF's diagonal Ψ* (Likhosherstov et al. 2023, "Dense-Exponential Random Features", FAVOR#):
    ψ_l* = (mean_j y_{j,l}² / mean_i x_{i,l}²)^{1/4}; returns the query and key scales (ψ*, 1/ψ*), each
    ``[..., 1, d]``.

    Ψ* minimises φ̄(Ψ) = mean_{i,j}‖Ψx_i + Ψ⁻¹y_j‖² = Σ_l (ψ_l² a_l + ψ_l⁻² b_l) + 2 mean(x)ᵀmean(y), with
    a_l = mean x_l², b_l = mean y_l² (the cross term is Ψ-free): ψ² a + ψ⁻² b is minimal at ψ⁴ = b/a, value
    2√(ab).
    (Ψx)ᵀ(Ψ⁻¹y) = xᵀy, so SADERF stays unbiased for SM.

    A zero column (a_l = 0 or b_l = 0) leaves ψ_l undefined: the infimum 2√(a_l b_l) = 0 is then approached
    as ψ_l → ∞ (a_l = 0) or ψ_l → 0 (b_l = 0), and in that limit coordinate l of *both* transformed sequences
    is 0. Both scales are set to 0 there: the objective attains its infimum, and the products x_{i,l} y_{j,l}
    dropped are all 0, so (Ψx_i)ᵀ(Ψ⁻¹y_j) = x_iᵀy_j still holds on the sequences the scales came from.
    ψ is computed in float64 in log space, so b/a cannot overflow. Proof: proofs/saderf.md.
    """
    a = (x.double() ** 2).mean(-2, keepdim=True)
    b = (y.double() ** 2).mean(-2, keepdim=True)
    ok = (a > 0) & (b > 0)
    one = torch.ones_like(a)
    log_psi = 0.25 * (torch.log(torch.where(ok, b, one)) - torch.log(torch.where(ok, a, one)))
    zero = torch.zeros_like(a)
    return torch.where(ok, torch.exp(log_psi), zero), torch.where(ok, torch.exp(-log_psi), zero)


# ---------------------------------------------------------------------------------------------------
# Discretely-induced random features (Likhosherstov et al. 2022, "Chefs' Random Tables", §4: DIRF)
# ---------------------------------------------------------------------------------------------------


@finite_result("x", "y", points=("x", "y"))
def dirf_log_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""log E[f(x)f(y)] for DIRF features f(x) = Π_l x_l^{ω_l} / √(ω_l! P(ω_l)), ω_l iid from a pmf P on ℕ
    with P(k) > 0 for every k (Poisson λ > 0, geometric 0 < p < 1); ``x``, ``y`` of shape ``[..., d]``.

    E f(x)f(y) = Π_l Σ_k P(k)·(x_l y_l)^k/(k! P(k)) = Π_l Σ_k (x_l y_l)^k/k! = exp(xᵀy): the pmf cancels (an
    importance-weighted exponential series), so the log-kernel is xᵀy for every such law and every sign of
    x_l y_l. For Poisson(λ), f = e^{λd/2} Π_l (x_l/√λ)^{ω_l} and the same value reads
    e^{λd} Π_l G(x_l y_l/λ) with the probability generating function G(u) = E u^ω = e^{λ(u−1)}; the law's MGF
    gives G(u) = M(log u) only for u > 0, so it cannot be used for negative products x_l y_l.
    Proof: proofs/dirf.md.
    """
    return (x * y).sum(-1)


@finite_result("x", "y", points=("x", "y"))
def poisrf_variance(x, y, rate: float, num_features: int) -> torch.Tensor:
    r"""PoisRF: one feature's second moment is e^{λd} exp(Σ_l x_l² y_l² / λ), so
    Var = (e^{λd + Σ x_l²y_l²/λ} − SM²)/m. Proof: proofs/dirf.md."""
    lam = check_real(rate, "rate", minimum=0.0, strict_min=True)
    m = check_int(num_features, "num_features", minimum=1)
    return poisrf_covariance(x, y, y, lam, m)


@finite_result("x", "y", points=("x", "y"))
def geomrf_variance(x, y, p: float, num_features: int) -> torch.Tensor:
    r"""GeomRF: one feature's second moment is Π_l I₀(2|x_l y_l|/√(1−p))/p, with I₀ the modified Bessel
    function (Σ_k t^k/k!² = I₀(2√t)). Var = (that − SM²)/m. Proof: proofs/dirf.md."""
    p = check_real(p, "p", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    m = check_int(num_features, "num_features", minimum=1)
    return geomrf_covariance(x, y, y, p, m)


# ---------------------------------------------------------------------------------------------------
# Orthogonal frequencies
# ---------------------------------------------------------------------------------------------------


def orf_pair_fraction(num_features: int, dim: int) -> float:
    r"""Σ_blocks b(b−1)/m² for ORF's ⌈m/d⌉ independent blocks of sizes b (d rows each, the last one partial).

    The variance of the mean of m row terms Y_i is Var Y₁/m + (Σ_blocks b(b−1)/m²)·Cov(Y₁, Y₂): rows of
    one block share one pair covariance, rows of different blocks are independent. It is (m−1)/m for m ≤ d and
    at most (d−1)/m. Proof: proofs/orthogonal_variance.md (Step 1).
    """
    m = check_int(num_features, "num_features", minimum=1)
    d = check_int(dim, "dim", minimum=1)
    full, last = divmod(m, d)
    return (full * d * (d - 1) + last * (last - 1)) / m**2


@finite_result("x", "y", points=("x", "y"))
def orf_positive_mse_bound(x, y, num_features: int) -> torch.Tensor:
    r"""Performer Theorem 2 (positive features for SM, ω rows orthogonal within blocks of d, with iid χ_d
    norms independent of the directions), for any m (⌈m/d⌉ independent blocks):

    MSE_ort ≤ MSE_iid − c_{m,d}·(2/(d+2))·(SM − exp(−(‖x‖² + ‖y‖²)/2))², c_{m,d} = Σ_blocks b(b−1)/m²
    (:func:`orf_pair_fraction`; (m−1)/m for m ≤ d, the theorem as stated). Proof: proofs/orthogonal_variance.md.
    """
    m = check_int(num_features, "num_features", minimum=1)
    d = x.shape[-1]
    sm = torch.exp((x * y).sum(-1))
    gap = sm - torch.exp(-0.5 * (_sq(x) + _sq(y)))
    return softmax_positive_variance(x, y, m) - orf_pair_fraction(m, d) * (2 / (d + 2)) * gap**2


@finite_result("x", "y", points=("x", "y"))
def orf_trig_variance_leading(x, y, num_features: int, std: float = 1.0) -> torch.Tensor:
    r"""Yu et al. 2016 ("Orthogonal Random Features", Theorem 1), leading term for the Gaussian kernel with
    paired trig features: Var_ORF ≈ Var_RFF − c_{m,d}·e^{−ζ²}ζ⁴/(2d), ζ = ‖τ‖·std, c_{m,d} = Σ_blocks b(b−1)/m²
    (:func:`orf_pair_fraction`: (m−1)/m for one block, m ≤ d). Non-negative for every m (c_{m,d} ≤ (d−1)/m and
    e^{−ζ²}ζ⁴ ≤ (1 − e^{−ζ²})²). The exact value is :func:`orf_trig_variance`.
    Proof: proofs/orthogonal_variance.md.
    """
    m = check_int(num_features, "num_features", minimum=1)
    std = check_real(std, "std", minimum=0.0, strict_min=True)
    d = x.shape[-1]
    zeta2 = _sq(x - y) * std**2
    base = gaussian_trig_covariance(zeta2, zeta2, zeta2, m)  # (1 − k²)²/(2m), k = e^{−ζ²/2}, without rounding
    return base - orf_pair_fraction(m, d) * torch.exp(-zeta2) * zeta2**2 / (2 * d)


def _series_length(u: torch.Tensor) -> int:
    """N such that Σ_{n≥N} uⁿ/n! < e^{−70}·e^u for u ≥ 0: with t = N − u = 12√u + 60, Bernstein's bound on the
    Poisson(u) tail, P(n ≥ u + t) ≤ exp(−t²/(2(u + t/3))), is below e^{−70} for every u ≥ 0."""
    top = float(u.max()) if u.numel() else 0.0
    return int(top + 12.0 * math.sqrt(top) + 60.0)


def _excess_log_terms(a: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log of the terms (2a)ⁿ/n!·(1 − r_n), n ≥ 2, of :func:`orf_pair_excess` for a > 0 (``[..., N]``) and n."""
    n_terms = _series_length(2 * a)
    n = torch.arange(2, n_terms, dtype=torch.float64)
    k = torch.arange(n_terms - 1, dtype=torch.float64)
    log_r = torch.cumsum(torch.log((d + k) / (d + 2 * k)), 0)[1:]  # log r_n for n = 2..N−1
    log_terms = n * torch.log(2 * a)[..., None] - torch.lgamma(n + 1) + torch.log(-torch.expm1(log_r))
    return log_terms, n


def _log_neg_excess(u: torch.Tensor, d: int) -> torch.Tensor:
    """log(−G_d(u)) for u > 0: every term of the series is negative, so this is a log-sum-exp."""
    return torch.logsumexp(_excess_log_terms(u, d)[0], -1)


def orf_pair_excess(u: torch.Tensor, dim: int) -> torch.Tensor:
    r"""G_d(u) = ₁F₁(d; d/2; u) − e^{2u}: E[e^{√(2u)(X+Y)}] − (iid value) for u ≥ 0, E[cos(√(−2u)(X+Y))] −
    (iid value) for u ≤ 0, where X = ω₁ᵀv, Y = ω₂ᵀv are the projections on a unit v of two orthogonal ORF rows
    with independent χ_d norms (proofs/orthogonal_variance.md, Step 5: E e^{t(X+Y)} = ₁F₁(d; d/2; t²/2)).

    Evaluated in float64 from series without catastrophic cancellation, with r_n = Π_{k<n} (d + k)/(d + 2k)
    (so (d)_n/(d/2)_n = 2ⁿ r_n):

    * u > 0: G = −Σ_{n≥2} (2u)ⁿ/n! (1 − r_n), every term < 0, summed in log space: relative error of order
      ε·u·log u (the rounding of the logs of the terms, ≈ n log 2u − log n!);
    * −1 ≤ u < 0: the same series, alternating, dominated by its first term n = 2: relative error a few ε;
    * u < −1: Kummer's transformation ₁F₁(d; d/2; −x) = e^{−x} ₁F₁(−d/2; d/2; x), x = −u, gives
      G = e^{−x} Σ_n xⁿ/n! (−1)ⁿ (p_n − 1), p_n = Π_{k<n} (d − 2k)/(d + 2k) ∈ [−1, 1]: Poisson(x) weights (summing to
      1) times factors in [−2, 0], so an *absolute* error of order ε·x·log x (the rounding of each weight's log).

    ``u`` is any float64 tensor; ``dim`` = d ≥ 1.
    """
    d = check_int(dim, "dim", minimum=1)
    u = torch.as_tensor(u, dtype=torch.float64)
    if not bool(torch.isfinite(u).all()):
        raise ValueError("u must be finite")
    out = torch.zeros_like(u)
    pos, mid, far = u > 0, (u < 0) & (u >= -1), u < -1
    if bool(pos.any()):
        out = torch.where(pos, -torch.exp(_log_neg_excess(torch.where(pos, u, 1.0), d)), out)
    if bool(mid.any()):
        log_terms, n = _excess_log_terms(torch.where(mid, -u, 1.0), d)
        sign = torch.where(n % 2 == 0, 1.0, -1.0).to(torch.float64)
        out = torch.where(mid, -(sign * torch.exp(log_terms)).sum(-1), out)
    if bool(far.any()):
        x = -u
        n_terms = _series_length(x[far])
        n = torch.arange(n_terms, dtype=torch.float64)
        k = torch.arange(n_terms - 1, dtype=torch.float64)
        p = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod((d - 2 * k) / (d + 2 * k), 0)])
        sign = torch.where(n % 2 == 0, 1.0, -1.0).to(torch.float64)
        log_x = torch.log(torch.where(far, x, torch.ones_like(x)))[..., None]
        # e^{−x} xⁿ/n! as exp(n log x − lgamma(n+1) − x): the Poisson(x) weights, no overflow
        weights = torch.exp(n * log_x - torch.lgamma(n + 1) - x[..., None])
        out = torch.where(far, (weights * sign * (p - 1)).sum(-1), out)
    return out


@finite_result("x", "y", points=("x", "y"))
def orf_positive_variance(x, y, num_features: int) -> torch.Tensor:
    r"""Exact variance of positive features for SM with ORF frequencies (⌈m/d⌉ independent blocks, χ_d norms):

    Var = Var_iid(m) + c_{m,d}·e^{−‖x‖²−‖y‖²}·G_d(‖z‖²/2),  z = x + y,

    with Var_iid(m) = :func:`softmax_positive_variance`, c_{m,d} = :func:`orf_pair_fraction` and
    G_d(u) = ₁F₁(d; d/2; u) − e^{2u} ≤ 0 (:func:`orf_pair_excess`). ``x``, ``y`` of shape ``[..., d]``.
    Proof: proofs/orthogonal_variance.md (Step 5).
    """
    m = check_int(num_features, "num_features", minimum=1)
    d = x.shape[-1]
    s = _sq(x + y).to(torch.float64)
    log_hh2 = -(_sq(x) + _sq(y)).to(torch.float64)
    pos = s > 0  # G_d(0) = 0: no covariance at z = 0
    cov = torch.where(pos, -torch.exp(log_hh2 + _log_neg_excess(torch.where(pos, s / 2, 1.0), d)), 0.0)
    return (softmax_positive_variance(x, y, m).to(torch.float64) + orf_pair_fraction(m, d) * cov).to(x.dtype)


@finite_result("x", "y", points=("x", "y"))
def orf_trig_variance(x, y, num_features: int, std: float = 1.0) -> torch.Tensor:
    r"""Exact variance of paired trig features for the Gaussian kernel exp(−ζ²/2), ζ = ‖x − y‖·std, with ORF
    frequencies (⌈m/d⌉ independent blocks, χ_d norms):

    Var = (1 − e^{−ζ²})²/(2m) + c_{m,d}·G_d(−ζ²/2),  G_d(−ζ²/2) = ₁F₁(d; d/2; −ζ²/2) − e^{−ζ²},

    the pair covariance of Step 5 (:func:`orf_pair_excess`); its expansion in 1/d gives the leading term
    −e^{−ζ²}ζ⁴/(2d) of :func:`orf_trig_variance_leading`. ``x``, ``y`` of shape ``[..., d]``.
    Proof: proofs/orthogonal_variance.md (Step 5).
    """
    m = check_int(num_features, "num_features", minimum=1)
    std = check_real(std, "std", minimum=0.0, strict_min=True)
    d = x.shape[-1]
    zeta2 = (_sq(x - y) * std**2).to(torch.float64)
    base = gaussian_trig_covariance(zeta2, zeta2, zeta2, m)  # (1 − e^{−ζ²})²/(2m), 1 − k² not rounded to 0
    return (base + orf_pair_fraction(m, d) * orf_pair_excess(-zeta2 / 2, d)).to(x.dtype)


ORF_CROSS_MAX_SIZE = 100.0  # largest (‖a‖² + ‖b‖²)/2 at which orf_pair_cross_excess's quadrature was measured
ORF_CROSS_MAX_DIM = 64  # largest d measured (at d = 128 ₁F₁ overflows near size 90; at d = 256 "cos" loses accuracy)
_CROSS_CHUNK = 2**21  # quadrature points evaluated at once


def _orf_cross_nodes(d: int, size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, its weights, φ) of :func:`orf_pair_cross_excess`: Gauss–Jacobi for t ~ Beta(1, (d−2)/2) (weight
    (1 − t)^{(d−4)/2} on [0, 1]; t ≡ 1 for d = 2) and the midpoint rule on [0, π) for φ, exact for the terms of
    total degree ≤ ``deg`` = size + 6√size + 16 of the integrand's series in t cos²(·)."""
    deg = int(math.ceil(size + 6.0 * math.sqrt(size) + 16.0))
    phi = (np.arange(deg + 1) + 0.5) * (math.pi / (deg + 1))
    if d == 2:
        return np.ones(1), np.ones(1), phi
    x, w = special.roots_jacobi(deg // 2 + 1, (d - 4) / 2.0, 0.0)
    return (1.0 + x) / 2.0, w / w.sum(), phi


def orf_pair_cross_excess(a: torch.Tensor, b: torch.Tensor, kind: str = "mgf") -> torch.Tensor:
    r"""The joint transform of two orthogonal ORF rows (ω₁, ω₂) (one Haar block, independent χ_d norms) at
    (a, b), minus its value for independent N(0, I_d) rows:

    * ``kind="mgf"``: E e^{ω₁ᵀa + ω₂ᵀb} − e^{(‖a‖² + ‖b‖²)/2};
    * ``kind="cos"``: E cos(ω₁ᵀa + ω₂ᵀb) − e^{−(‖a‖² + ‖b‖²)/2}.

    With P(v) = ₁F₁(d/2; 1/2; v/2) (P(α²) = E cosh(rα), P(−α²) = E cos(rα) for r ~ χ_d) and
    R(v) = ₁F₁(d/2; (d−1)/2; v/2) (E[e^{ω₂ᵀb} | ω₁] = R(‖b_⊥‖²), b_⊥ the part of b orthogonal to ω₁), and q uniform
    on the unit sphere, u = qᵀa/‖a‖, w = qᵀb/‖b‖ (σ = +1 for "mgf", −1 for "cos"):

    excess = E_q[(P(σ‖a‖²u²) − e^{σ‖a‖²/2}) · (R(σ‖b‖²(1 − w²)) − e^{σ‖b‖²/2})]

    (a covariance over q: both factors have mean 0). (u, w) are two projections of q on the plane of a and b:
    with polar coordinates √t·(cos φ, sin φ) in that plane, t ~ Beta(1, (d−2)/2) and φ uniform, independent;
    evaluated by Gauss–Jacobi quadrature in t and the midpoint rule in φ (:func:`_orf_cross_nodes`): the
    integrand is a power series in t·cos²φ and t·cos²(φ − θ) (θ the angle between a and b), and the rules
    are exact for its terms up to a degree that grows with the size. Error (measured, not proven): ≤ 1e-10
    times the scale e^{(‖a‖² + ‖b‖²)/2} ("mgf") or 1 ("cos") for d ≤ :data:`ORF_CROSS_MAX_DIM` and sizes
    (‖a‖² + ‖b‖²)/2 ≤ :data:`ORF_CROSS_MAX_SIZE` (largest seen 3e-11, at d = 3, size 98; typically 1e-13),
    against a rule of three times the degree and, at a = b, against ``orf_pair_excess(σ‖a‖²/2, d)`` (Step 5's
    exact series); larger sizes and d are refused.

    ``a``, ``b``: float tensors ``[..., d]``, broadcastable, 2 ≤ d ≤ 64 (for d = 1 a block has one row: there is
    no pair). Proof: proofs/orthogonal_variance.md (Cross pairs).
    """
    if kind not in ("mgf", "cos"):
        raise ValueError(f"kind must be 'mgf' or 'cos', got {kind!r}")
    a, b = torch.broadcast_tensors(torch.as_tensor(a), torch.as_tensor(b))
    d = a.shape[-1] if a.dim() else 0
    if not 2 <= d <= ORF_CROSS_MAX_DIM:
        raise ValueError(f"a and b must have shape [..., d] with 2 ≤ d ≤ {ORF_CROSS_MAX_DIM} (one block of d = 1 has "
                         f"no pair of rows; larger d is outside the measured range), got {tuple(a.shape)}")
    an = a.detach().to("cpu", torch.float64).numpy().reshape(-1, d)
    bn = b.detach().to("cpu", torch.float64).numpy().reshape(-1, d)
    if not (np.isfinite(an).all() and np.isfinite(bn).all()):
        raise ValueError("a and b must be finite")
    big_a, big_b = (an * an).sum(-1), (bn * bn).sum(-1)
    size = float(((big_a + big_b) / 2).max()) if an.shape[0] else 0.0
    if size > ORF_CROSS_MAX_SIZE:
        raise ValueError(f"(‖a‖² + ‖b‖²)/2 must be ≤ {ORF_CROSS_MAX_SIZE:g} (the measured range of the quadrature), "
                         f"got {size:.4g}")
    sig = 1.0 if kind == "mgf" else -1.0
    al, be = np.sqrt(big_a), np.sqrt(big_b)
    a_hat = an / np.where(al > 0, al, 1.0)[:, None]
    b_perp = bn - (bn * a_hat).sum(-1)[:, None] * a_hat
    cos_t = np.where(al * be > 0, (an * bn).sum(-1) / np.where(al * be > 0, al * be, 1.0), 1.0)
    sin_t = np.sqrt((b_perp * b_perp).sum(-1)) / np.where(be > 0, be, 1.0)
    t, wt, phi = _orf_cross_nodes(d, size)
    c2 = np.cos(phi) ** 2
    out = np.empty(an.shape[0])
    step = max(1, _CROSS_CHUNK // (t.size * phi.size))
    for s0 in range(0, an.shape[0], step):
        sl = slice(s0, s0 + step)
        aa, bb = sig * big_a[sl, None, None], sig * big_b[sl, None, None]
        cw = (np.cos(phi) * cos_t[sl, None] + np.sin(phi) * sin_t[sl, None]) ** 2  # w² / t: [k, φ]
        p = special.hyp1f1(d / 2.0, 0.5, aa * t[:, None] * c2 / 2.0) - np.exp(aa / 2.0)
        r = special.hyp1f1(d / 2.0, (d - 1) / 2.0, bb * (1.0 - t[:, None] * cw[:, None, :]) / 2.0) - np.exp(bb / 2.0)
        out[sl] = ((p * r).mean(-1) * wt).sum(-1)
    return torch.from_numpy(out).reshape(a.shape[:-1]).to(device=a.device)


@finite_result("x", "y", "y2", points=("x", "y", "y2"))
def orf_positive_covariance(x, y, y2, num_features: int) -> torch.Tensor:
    r"""Cov(K̂(x, y), K̂(x, y')) of positive features for SM with ORF frequencies (⌈m/d⌉ independent blocks, χ_d
    norms, std 1), z = x + y, z' = x + y':

    Cov = Cov_iid(m) + c_{m,d}·h(x)²h(y)h(y')·X(z, z'),  X = :func:`orf_pair_cross_excess` (``"mgf"``),

    Cov_iid(m) = :func:`positive_covariance` with the Gaussian M(z) = e^{‖z‖²/2}, c_{m,d} = :func:`orf_pair_fraction`.
    At y' = y it is :func:`orf_positive_variance`. Error of the pair term: ≤ 1e-10·c_{m,d}·SM(x, y)·SM(x, y')
    (:func:`orf_pair_cross_excess`). ``x``, ``y``, ``y2`` of shape ``[..., d]``, broadcastable.
    Proof: proofs/orthogonal_variance.md (Cross pairs).
    """
    m = check_int(num_features, "num_features", minimum=1)
    d, dtype = x.shape[-1], x.dtype
    x, y, y2 = (t.to(torch.float64) for t in (x, y, y2))
    z, z2 = x + y, x + y2
    lh1, lh2 = -(_sq(x) + _sq(y)) / 2, -(_sq(x) + _sq(y2)) / 2
    iid = positive_covariance(lh1, _sq(z) / 2, lh2, _sq(z2) / 2, _sq(z + z2) / 2, m)
    c = orf_pair_fraction(m, d)
    if c == 0.0:
        return iid.to(dtype)
    return (iid + c * torch.exp(lh1 + lh2) * orf_pair_cross_excess(z, z2, "mgf")).to(dtype)


@finite_result("x", "y", "y2", points=("x", "y", "y2"))
def orf_trig_covariance(x, y, y2, num_features: int, std: float = 1.0) -> torch.Tensor:
    r"""Cov(K̂(x, y), K̂(x, y')) of paired trig features for the Gaussian kernel exp(−std²‖x − y‖²/2) with ORF
    frequencies (⌈m/d⌉ independent blocks, χ_d norms), τ = x − y, τ' = x − y':

    Cov = Cov_iid(m) + c_{m,d}·X(std·τ, std·τ'),  X = :func:`orf_pair_cross_excess` (``"cos"``),

    Cov_iid(m) = :func:`trig_paired_covariance` with ψ(v) = e^{−std²‖v‖²/2}: E cos(ω₁ᵀτ)cos(ω₂ᵀτ') = E cos(ω₁ᵀτ + ω₂ᵀτ')
    (flipping the sign of row 2 preserves the law). At y' = y it is :func:`orf_trig_variance`. Weighted
    features multiply by w(x)²w(y)w(y'). Error of the pair term: ≤ 1e-10·c_{m,d} (:func:`orf_pair_cross_excess`).
    Proof: proofs/orthogonal_variance.md (Cross pairs).
    """
    m = check_int(num_features, "num_features", minimum=1)
    std = check_real(std, "std", minimum=0.0, strict_min=True)
    d, dtype = x.shape[-1], x.dtype
    x, y, y2 = (t.to(torch.float64) for t in (x, y, y2))
    tau, tau2 = std * (x - y), std * (x - y2)

    iid = gaussian_trig_covariance(_sq(tau), _sq(tau2), (tau * tau2).sum(-1), m)
    c = orf_pair_fraction(m, d)
    if c == 0.0:
        return iid.to(dtype)
    return (iid + c * orf_pair_cross_excess(tau, tau2, "cos")).to(dtype)


# ---------------------------------------------------------------------------------------------------
# Covariances of one draw's estimates at pairs sharing the query (proofs/attention_ratio.md)
# ---------------------------------------------------------------------------------------------------
# With iid rows, K̂(x, y) = (1/m) Σ_i g(ω_i; x, y), so Cov(K̂(x, y), K̂(x, y')) = (E[g(ω; x, y) g(ω; x, y')]
# − K(x, y) K(x, y'))/m. Each function below is that formula for one component; the variance functions above
# are its case y' = y, and call it.


@finite_result("psi_tau", "psi_tau2", "psi_sum", "psi_diff", "log_weight", "log_weight2")
def trig_paired_covariance(psi_tau, psi_tau2, psi_sum, psi_diff, num_features: int, log_weight=0.0,
                           log_weight2=None) -> torch.Tensor:
    r"""Paired trig features, Cov(K̂(x, y), K̂(x, y')) with τ = x − y, τ' = x − y':

    w(x)²w(y)w(y') · [(Re ψ(τ + τ') + Re ψ(y − y'))/2 − Re ψ(τ) Re ψ(τ')] / m,

    from cos a cos b = (cos(a + b) + cos(a − b))/2 and τ − τ' = y' − y. Arguments: ψ(τ), ψ(τ'), ψ(τ + τ'),
    ψ(y − y') (real parts); ``log_weight`` = log w(x)w(y), ``log_weight2`` = log w(x)w(y') (default: the
    same). At y' = y (ψ(0) = 1) this is :func:`trig_paired_variance`. Proof: proofs/attention_ratio.md.
    """
    m = check_int(num_features, "num_features", minimum=1)
    _check_char_values(psi_tau=psi_tau, psi_tau2=psi_tau2, psi_sum=psi_sum, psi_diff=psi_diff)
    log_weight = _like(log_weight, psi_tau)
    log_weight2 = log_weight if log_weight2 is None else _like(log_weight2, psi_tau)
    bracket = (psi_sum + psi_diff) / 2.0 - psi_tau * psi_tau2
    return torch.exp(log_weight + log_weight2) * bracket / m


@finite_result("psi_tau", "psi_tau2", "psi_sum", "psi_diff")
def trig_phase_covariance(psi_tau, psi_tau2, psi_sum, psi_diff, feature_dim: int) -> torch.Tensor:
    r"""Random-phase trig features, D of them: Cov(K̂(x, y), K̂(x, y')) =
    [Re ψ(y − y') + Re ψ(τ + τ')/2 − Re ψ(τ) Re ψ(τ')] / D.

    One feature is cos ωᵀτ + cos(ωᵀ(x + y) + 2b); over b, E cos(c + 2b) = 0 and
    E cos(c + 2b) cos(c' + 2b) = cos(c − c')/2 with c − c' = ωᵀ(y − y'). At y' = y this is
    :func:`trig_phase_variance`. Proof: proofs/attention_ratio.md.
    """
    dd = check_int(feature_dim, "feature_dim", minimum=1)
    _check_char_values(psi_tau=psi_tau, psi_tau2=psi_tau2, psi_sum=psi_sum, psi_diff=psi_diff)
    return (psi_diff + psi_sum / 2.0 - psi_tau * psi_tau2) / dd


@finite_result("log_hh", "log_m_z", "log_hh2", "log_m_z2", "log_m_sum")
def positive_covariance(log_hh, log_m_z, log_hh2, log_m_z2, log_m_sum, num_features: int) -> torch.Tensor:
    r"""Positive features h(x)e^{ωᵀx}: with z = x + y, z' = x + y',

    Cov(K̂(x, y), K̂(x, y')) = [h(x)²h(y)h(y') M(z + z') − h(x)h(y)M(z) · h(x)h(y')M(z')] / m.

    Arguments are logs: log h(x)h(y), log M(z), log h(x)h(y'), log M(z'), log M(z + z'). At y' = y this is
    :func:`positive_variance`. Proof: proofs/attention_ratio.md.
    """
    m = check_int(num_features, "num_features", minimum=1)
    log_hh, log_hh2 = _like(log_hh, log_m_z), _like(log_hh2, log_m_z)
    # cross − means = means·(e^{log M(z+z') − log M(z) − log M(z')} − 1): no cancellation where the covariance is
    # tiny against the means (z → 0, z' → 0), no overflow of either term alone
    return _exp_expm1(log_hh + log_m_z + log_hh2 + log_m_z2, log_m_sum - log_m_z - log_m_z2) / m


@finite_result(
    "log_hh", "log_m_z", "log_m_neg_z", "log_hh2", "log_m_z2", "log_m_neg_z2", "log_m_sum",
    "log_m_neg_sum", "log_m_diff", "log_m_neg_diff"
)
def hyperbolic_covariance(log_hh, log_m_z, log_m_neg_z, log_hh2, log_m_z2, log_m_neg_z2,
                          log_m_sum, log_m_neg_sum, log_m_diff, log_m_neg_diff, num_features: int):
    r"""Hyperbolic features: one frequency gives h(x)h(y) cosh(ωᵀz), and
    cosh a cosh b = (cosh(a + b) + cosh(a − b))/2 with E cosh ωᵀu = (M(u) + M(−u))/2, so

    Cov = h(x)²h(y)h(y')·[(M(z+z') + M(−z−z') + M(z−z') + M(z'−z))/4 − c(z)c(z')] / m,
    c(u) = (M(u) + M(−u))/2, z − z' = y − y'. At y' = y (M(0) = 1) this is :func:`hyperbolic_variance`.
    Proof: proofs/attention_ratio.md.
    """
    m = check_int(num_features, "num_features", minimum=1)
    log_hh = _like(log_hh, log_m_z)
    log_hh2 = _like(log_hh2, log_m_z)
    # in logs throughout (M(2z) alone overflowed where the covariance is a finite number), the difference as
    # e^{log c(z)c(z')}·expm1(log(cross/4) − log c(z)c(z'))
    log_cross = torch.logsumexp(torch.stack([log_m_sum, log_m_neg_sum, log_m_diff, log_m_neg_diff]), 0) \
        - math.log(4.0)
    log_means = torch.logaddexp(log_m_z, log_m_neg_z) + torch.logaddexp(log_m_z2, log_m_neg_z2) - 2 * math.log(2.0)
    return _exp_expm1(log_hh + log_hh2 + log_means, log_cross - log_means) / m


@finite_result("q_tau", "q_tau2", "cross", "log_weight", "log_weight2")
def gaussian_trig_covariance(q_tau, q_tau2, cross, num_features: int, log_weight=0.0, log_weight2=None):
    r""":func:`trig_paired_covariance` for centred Gaussian frequencies ω ~ N(0, Σ): with q = τᵀΣτ, q' = τ'ᵀΣτ',
    c = τᵀΣτ' (``q_tau``, ``q_tau2``, ``cross``), Re ψ(τ ± τ') = e^{−(q + q')/2 ∓ c}, so the bracket is

    e^{−(q + q')/2}(cosh c − 1) = e^{−(q + q')/2}·2 sinh²(c/2)   (at τ' = τ: (1 − e^{−q})²/2),

    evaluated in logs: exact to rounding where the general form (ψ(τ+τ') + ψ(τ−τ'))/2 − ψ(τ)ψ(τ') cancels
    (x → y, where it returned −5·10⁻¹⁷ for 2·10⁻³³). Proof: proofs/trig_variance.md."""
    m = check_int(num_features, "num_features", minimum=1)
    log_weight = _like(log_weight, q_tau)
    log_weight2 = log_weight if log_weight2 is None else _like(log_weight2, q_tau)
    return _exp_cosh_minus_one(log_weight + log_weight2 - (q_tau + q_tau2) / 2, cross) / m


@finite_result("log_hh", "log_hh2", "q_z", "q_z2", "cross")
def gaussian_hyperbolic_covariance(log_hh, log_hh2, q_z, q_z2, cross, num_features: int) -> torch.Tensor:
    r""":func:`hyperbolic_covariance` for centred Gaussian frequencies ω ~ N(0, Σ): with q = zᵀΣz, q' = z'ᵀΣz',
    c = zᵀΣz', M(±(z ± z')) = e^{(q + q')/2 ± c} and c(z) = e^{q/2}, so the bracket is

    e^{(q + q')/2}(cosh c − 1)   (at z' = z: (e^q − 1)²/2),

    in logs (no cancellation as z → 0, no overflow of M(2z)). Proof: proofs/positive_variance.md."""
    m = check_int(num_features, "num_features", minimum=1)
    log_hh, log_hh2 = _like(log_hh, q_z), _like(log_hh2, q_z)
    return _exp_cosh_minus_one(log_hh + log_hh2 + (q_z + q_z2) / 2, cross) / m


@finite_result("x", "y", "y2", "a", points=("x", "y", "y2"))
def gerf_cross_moment_log(x, y, y2, a, s: int, c: float, dim: int) -> torch.Tensor:
    r"""log E[g(ω; x, y) g(ω; x, y')] for one GERF frequency ω ~ N(0, I), real A < 1/8; ``[..., d]`` inputs.

    With r = 2(1−4A)/(1−8A) and base = (1−4A)^d (1−8A)^{−d/2} e^{C(2‖x‖² + ‖y‖² + ‖y'‖²)}:
    s = +1: base · exp(r‖2x + y + y'‖²/4);
    s = −1: base · ½[exp(−r‖y − y'‖²/4) + exp(−r‖2x − y − y'‖²/4)].
    Derivation: g g' = D⁴e^{4A‖ω‖² + C(…)}·e^{Bωᵀ(2x + y + y')} (s = +1), or ·cos βωᵀτ cos βωᵀτ' (s = −1,
    β² = 1 − 4A), and the tilted transforms at a = 4A. At y' = y this is :func:`gerf_second_moment_log`.
    Proof: proofs/attention_ratio.md.
    """
    if s not in (1, -1):
        raise ValueError(f"s must be +1 or -1, got {s}")
    if check_int(dim, "dim", minimum=1) != x.shape[-1]:
        raise ValueError(f"dim must be the points' dimension x.shape[-1] = {x.shape[-1]}, got {dim}")
    a = _gerf_a(a, x)
    base = dim * torch.log1p(-4 * a) - 0.5 * dim * torch.log1p(-8 * a) + c * (2.0 * _sq(x) + _sq(y) + _sq(y2))
    quarter = (1 - 4 * a) / (2 * (1 - 8 * a))  # r/4
    if s == 1:
        return base + quarter * _sq(2.0 * x + y + y2)
    return base + torch.logaddexp(-quarter * _sq(y - y2), -quarter * _sq(2.0 * x - y - y2)) - math.log(2.0)


@finite_result("x", "y", "y2", "a", points=("x", "y", "y2"))
def gerf_covariance(x, y, y2, a, s: int, c: float, num_features: int, log_kernel, log_kernel2):
    """GERF: Cov(K̂(x, y), K̂(x, y')) = (cross moment − K(x, y)K(x, y'))/m. Proof: proofs/attention_ratio.md."""
    m = check_int(num_features, "num_features", minimum=1)
    cross = gerf_cross_moment_log(x, y, y2, a, s, c, x.shape[-1])
    return _exp_expm1(log_kernel + log_kernel2, cross - log_kernel - log_kernel2) / m


@finite_result("x", "y", "y2", points=("x", "y", "y2"))
def poisrf_covariance(x, y, y2, rate: float, num_features: int) -> torch.Tensor:
    r"""PoisRF: E f(x)²f(y)f(y') = Π_l Σ_k (x_l²y_l y'_l)^k/(k!² P(k)) = e^{λd + Σ_l x_l²y_l y'_l/λ}, so
    Cov = (that − e^{xᵀy + xᵀy'})/m. Proof: proofs/attention_ratio.md."""
    lam = check_real(rate, "rate", minimum=0.0, strict_min=True)
    m = check_int(num_features, "num_features", minimum=1)
    log_means = (x * y).sum(-1) + (x * y2).sum(-1)
    return _exp_expm1(log_means, lam * x.shape[-1] + (x * x * y * y2).sum(-1) / lam - log_means) / m


@finite_result("x", "y", "y2", points=("x", "y", "y2"))
def geomrf_covariance(x, y, y2, p: float, num_features: int) -> torch.Tensor:
    r"""GeomRF: E f(x)²f(y)f(y') = Π_l F(x_l²y_l y'_l/(1−p))/p with F(u) = Σ_k u^k/k!², which is I₀(2√u) for
    u ≥ 0 and J₀(2√−u) for u < 0 (Bessel). Cov = (that − e^{xᵀy + xᵀy'})/m. Proof: proofs/attention_ratio.md."""
    p = check_real(p, "p", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    m = check_int(num_features, "num_features", minimum=1)
    u = x * x * y * y2 / (1.0 - p)
    arg = 2.0 * u.abs().sqrt()
    log_i0 = torch.log(torch.special.i0e(arg)) + arg
    j0 = torch.special.bessel_j0(arg)
    log_f = torch.where(u >= 0, log_i0, torch.log(j0.abs()))
    sign = torch.where((u < 0) & (j0 < 0), -1.0, 1.0).prod(-1)
    cross = sign * torch.exp(log_f.sum(-1) - x.shape[-1] * math.log(p))
    return (cross - torch.exp((x * y).sum(-1) + (x * y2).sum(-1))) / m


def _sderf_spectrum(t) -> torch.Tensor:
    """SDERF's t as a tensor, checked: finite and t > ½ (I − 8A ≻ 0 with A = V diag((1 − t)/4) Vᵀ)."""
    t = torch.as_tensor(t)
    if not bool(torch.isfinite(t).all()) or bool((t <= 0.5).any()):
        raise ValueError("t must be finite and > 1/2 in every coordinate (I - 8A positive definite)")
    return t


@finite_result("x", "y", "y2", points=("x", "y", "y2"))
def sderf_cross_moment_log(x, y, y2, v, t) -> torch.Tensor:
    r"""log E[g(ω; x, y) g(ω; x, y')] for one SDERF frequency ω ~ N(0, I), ``x``, ``y``, ``y2`` ``[..., d]``;
    ``v`` ``[..., d, d]`` (orthonormal columns v_l) and ``t`` ``[..., d]`` (every t_l > ½) broadcast against
    the batch shape ``[...]`` of the points. With w = 2x + y + y':

        Σ_l log t_l − ½ Σ_l log(2t_l − 1) + ½ Σ_l t_l/(2t_l − 1)·(v_lᵀw)² − ‖x‖² − (‖y‖² + ‖y'‖²)/2.

    Derivation: g(ω; x, y) = D² e^{2ωᵀAω + ωᵀB(x + y) − (‖x‖² + ‖y‖²)/2} with A = V diag((1 − t)/4) Vᵀ,
    B = V diag(√t) Vᵀ, D⁴ = Π t_l, so g g' = D⁴ e^{4ωᵀAω + ωᵀBw − ‖x‖² − (‖y‖² + ‖y'‖²)/2}, and
    E e^{ωᵀQω + ωᵀu} = det(I − 2Q)^{−1/2} e^{uᵀ(I − 2Q)⁻¹u/2} at Q = 4A (I − 2Q = V diag(2t − 1) Vᵀ), u = Bw.
    At y' = y (w = 2z) it is the second moment of proofs/dense_exponential.md, item 2.
    Proof: proofs/attention_ratio.md.
    """
    t = _sderf_spectrum(t).to(x.dtype)
    v = torch.as_tensor(v).to(x.dtype)
    if not bool(torch.isfinite(v).all()):
        raise ValueError("v must be finite (the orthonormal eigenvectors of SDERF's A)")

    def coords(u: torch.Tensor) -> torch.Tensor:  # (v_lᵀu)_l
        return (u.unsqueeze(-2) @ v).squeeze(-2)

    wv = 2.0 * coords(x) + (coords(y) + coords(y2))
    const = torch.log(t).sum(-1) - 0.5 * torch.log(2 * t - 1).sum(-1)
    quad = (t / (2 * t - 1) * wv * wv).sum(-1)
    return const + 0.5 * quad - _sq(x) - 0.5 * (_sq(y) + _sq(y2))


@finite_result("x", "y", "y2", points=("x", "y", "y2"))
def sderf_covariance(x, y, y2, v, t, num_features: int) -> torch.Tensor:
    r"""SDERF: Cov(K̂(x, y), K̂(x, y')) = SM(x, y)SM(x, y')·(e^{L − xᵀy − xᵀy'} − 1)/m with L
    :func:`sderf_cross_moment_log` (``v``, ``t`` as there). At y' = y it is SDERF's variance.
    Proof: proofs/attention_ratio.md."""
    m = check_int(num_features, "num_features", minimum=1)
    log_kk = (x * y).sum(-1) + (x * y2).sum(-1)
    return torch.exp(log_kk) * torch.expm1(sderf_cross_moment_log(x, y, y2, v, t) - log_kk) / m


def _angle_fraction(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(λ, zero) for broadcastable ``[..., d]`` x, y: λ = θ/π (½ where x or y is 0) and whether x or y is 0."""
    nx, ny = x.norm(dim=-1, keepdim=True), y.norm(dim=-1, keepdim=True)
    zero = (nx * ny)[..., 0] == 0
    u = x / torch.where(nx > 0, nx, torch.ones_like(nx))
    w = y / torch.where(ny > 0, ny, torch.ones_like(ny))
    # θ = 2·atan2(‖u − w‖, ‖u + w‖): accurate to rounding at θ ≈ 0 and θ ≈ π, where arccos(uᵀw) loses half the
    # digits (an error of √ε in θ made HRF's variance 4e-11 instead of 0 at y = x)
    theta = 2 * torch.atan2((u - w).norm(dim=-1), (u + w).norm(dim=-1))
    return torch.where(zero, torch.full_like(theta, 0.5), theta / math.pi), zero


@finite_result("x", "y", "y2", points=("x", "y", "y2"))
def hrf_covariance(x, y, y2, num_features: int, angular_features: int) -> torch.Tensor:
    r"""Angular HRF (iid N(0, I) rows, n angular frequencies): Cov(ŜM(x, y), ŜM(x, y')) for ``[..., d]`` inputs.

    With z = x + y, τ = x − y (z', τ' at y'), λ = θ_{x,y}/π, λ' = θ_{x,y'}/π, μ = θ_{y,y'}/π (½ at a zero
    vector) and the weights' covariance c = Cov(λ̂, λ̂') = ((λ + λ' − μ)/2 − λλ')/n (0 when x = 0):

        Cov = SM·SM'/m · [(λλ' + c)(e^{zᵀz'} − 1) + (λ(1 − λ') − c)(cos(zᵀτ') − 1)
                          + ((1 − λ)λ' − c)(cos(z'ᵀτ) − 1) + ((1 − λ)(1 − λ') + c)(cosh(τᵀτ') − 1)].

    Each bracket is E[ab']/(SM·SM') − 1 for one row's positive (a) or trigonometric (b) term; the weights are
    independent of the rows and sum to 1, so SM·SM' cancels. At y' = y (μ = 0, c = λ(1 − λ)/n) it is the
    variance of proofs/hybrid.md, item 2. Proof: proofs/attention_ratio.md.
    """
    m = check_int(num_features, "num_features", minimum=1)
    n = check_int(angular_features, "angular_features", minimum=1)
    lam, zero = _angle_fraction(x, y)
    lam2, zero2 = _angle_fraction(x, y2)
    mu, _ = _angle_fraction(y, y2)
    c = torch.where(zero | zero2, torch.zeros_like(lam), ((lam + lam2 - mu) / 2 - lam * lam2) / n)
    z, z2, tau, tau2 = x + y, x + y2, x - y, x - y2
    pos = torch.expm1((z * z2).sum(-1))
    pos_trig = -2 * torch.sin((z * tau2).sum(-1) / 2) ** 2  # cos u − 1
    trig_pos = -2 * torch.sin((z2 * tau).sum(-1) / 2) ** 2
    trig = 2 * torch.sinh((tau * tau2).sum(-1) / 2) ** 2  # cosh u − 1
    bracket = ((lam * lam2 + c) * pos + (lam * (1 - lam2) - c) * pos_trig + ((1 - lam) * lam2 - c) * trig_pos
               + ((1 - lam) * (1 - lam2) + c) * trig)
    return torch.exp((x * y).sum(-1) + (x * y2).sum(-1)) * bracket / m


# ---------------------------------------------------------------------------------------------------
# Linear attention as a ratio estimator (delta method; proofs/attention_ratio.md)
# ---------------------------------------------------------------------------------------------------


def attention_ratio_bias_mse(kernel, covariance, values) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Leading bias and MSE of ô = N̂/D̂, N̂ = Σ_j K̂_j v_j, D̂ = Σ_j K̂_j, for one query and n keys.

    ``kernel`` ``[..., n]``: K_j = K(x, y_j) (their sum D must be > 0); ``covariance`` ``[..., n, n]``:
    C_jk = Cov(K̂_j, K̂_k) of *one* draw (all keys share the draw, so C is not diagonal); ``values``
    ``[..., n, d_v]``. With o = Σ_j K_j v_j / D and u_j = v_j − o (per output coordinate):

        E ô − o ≈ (o Var D̂ − Cov(N̂, D̂))/D² = −uᵀC1/D²,
        E (ô − o)² ≈ (Var N̂ − 2o Cov(N̂, D̂) + o² Var D̂)/D² = uᵀCu/D².

    Returns ``(o, bias, mse)``, each ``[..., d_v]``. For estimators with C = Σ/m these are b/m and s/m, and
    m·bias → b, m·MSE → s as m → ∞ (for maps whose denominator is positive; for trig maps the moments are
    those of the estimator restricted to D̂ > D/2, see the proof). With values the one-hot vectors e_j the
    output is the row of attention weights, so the same formula propagates kernel error to the weights:
    E â_j − a_j ≈ (a_j 1ᵀC1 − (C1)_j)/D², Cov(â) ≈ J C Jᵀ with J = (I − a1ᵀ)/D.
    Proof: proofs/attention_ratio.md.
    """
    k = torch.as_tensor(kernel)
    c = torch.as_tensor(covariance)
    v = torch.as_tensor(values)
    if k.dim() < 1 or c.shape[-2:] != (k.shape[-1], k.shape[-1]):
        raise ValueError(
            f"covariance must have shape [..., n, n] matching kernel [..., n]; got {tuple(c.shape)} and "
            f"{tuple(k.shape)}"
        )
    if v.dim() < 2 or v.shape[-2] != k.shape[-1]:
        raise ValueError(f"values must have shape [..., n, d_v] with n = {k.shape[-1]}, got {tuple(v.shape)}")
    for name, t in (("kernel", k), ("covariance", c), ("values", v)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    d = k.sum(-1)
    if bool((d <= 0).any()):
        raise ValueError("kernel must have a positive sum over the keys (the denominator D = Σ_j K_j > 0)")
    out = (k.unsqueeze(-1) * v).sum(-2) / d.unsqueeze(-1)
    u = v - out.unsqueeze(-2)  # [..., n, d_v]
    cu = c @ u  # [..., n, d_v]
    d2 = (d * d).unsqueeze(-1)
    bias = -cu.sum(-2) / d2
    mse = (u * cu).sum(-2) / d2
    return out, bias, mse


# ---------------------------------------------------------------------------------------------------
# Uniform convergence (proofs/uniform_convergence.md)
# ---------------------------------------------------------------------------------------------------


def rks_uniform_bound(epsilon: float, num_features: int, dim: int, sigma_p: float, diameter: float) -> float:
    r"""Rahimi & Recht (2007), "Random Features for Large-Scale Kernel Machines", Claim 1:

    P(sup_{x,y∈M} |z(x)ᵀz(y) − k(x, y)| ≥ ε) ≤ 2⁸ (σ_p diam(M)/ε)² exp(−Dε²/(4(d + 2))),

    for a shift-invariant kernel k with spectral law p, σ_p² = E_p‖ω‖², M ⊂ R^d compact, and z the
    *random-phase* map √(2/D)[cos(ω_iᵀx + b_i)]_{i≤D} (ω_i iid p, b_i iid U[0, 2π]): ``num_features`` = D.
    For p = N(0, σ⁻²I), σ_p = √d/σ. The value may exceed 1 (vacuous); it is returned as is.
    Proof: proofs/uniform_convergence.md.
    """
    eps = check_real(epsilon, "epsilon", minimum=0.0, strict_min=True)
    dd = check_int(num_features, "num_features", minimum=1)
    d = check_int(dim, "dim", minimum=1)
    sigma_p = check_real(sigma_p, "sigma_p", minimum=0.0, strict_min=True)
    diameter = check_real(diameter, "diameter", minimum=0.0, strict_min=True)
    log_b = 8 * math.log(2.0) + 2 * math.log(sigma_p * diameter / eps) - dd * (eps * eps) / (4 * (d + 2))  # (inf,
    # not OverflowError, for ε ≈ 10³⁰⁰: the bound is then 0)
    return math.exp(min(log_b, 700.0))


def rks_uniform_epsilon(delta: float, num_features: int, dim: int, sigma_p: float, diameter: float) -> float:
    """The ε at which :func:`rks_uniform_bound` equals δ ∈ (0, 1) (the bound is strictly decreasing in ε),
    by bisection to relative precision 1e-12. Proof: proofs/uniform_convergence.md."""
    delta = check_real(delta, "delta", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    lo, hi = 1e-12, 1.0
    while rks_uniform_bound(hi, num_features, dim, sigma_p, diameter) > delta:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if rks_uniform_bound(mid, num_features, dim, sigma_p, diameter) > delta:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return hi


def finite_set_uniform_bound(variances, epsilon: float) -> float:
    r"""Chebyshev and the union bound over a finite set G of pairs: for any unbiased estimator with
    Var K̂(g) = σ_g², P(max_{g∈G} |K̂(g) − K(g)| ≥ ε) ≤ Σ_g σ_g²/ε². May exceed 1 (vacuous).
    Proof: proofs/uniform_convergence.md."""
    eps = check_real(epsilon, "epsilon", minimum=0.0, strict_min=True)
    var = torch.as_tensor(variances, dtype=torch.float64)
    if not bool(torch.isfinite(var).all()) or bool((var < 0).any()):
        raise ValueError("variances must be finite and >= 0")
    return float(var.sum()) / eps**2


def finite_set_uniform_epsilon(variances, delta: float) -> float:
    """The ε at which :func:`finite_set_uniform_bound` equals δ: √(Σ σ_g²/δ). Proof: proofs/uniform_convergence.md."""
    delta = check_real(delta, "delta", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    return math.sqrt(finite_set_uniform_bound(variances, 1.0) / delta)
