"""Closed forms of kerneltheory.theory against direct numerical second moments.

For one frequency the estimate is a scalar X(ω) (for paired maps, the sum over the pair); the variance of the
m-frequency estimate is (E X² − (E X)²)/m. E X and E X² are computed here by adaptive quadrature against the
N(0, 1) density (d = 1, and d = 2 where cheap), by exact enumeration for the integer laws, never by sampling.

Tolerances are derived, not picked: quad's error estimates e₁, e₂ of E X and E X² propagate to
(e₂ + 2|E X|e₁ + e₁²)/m, plus 64 ulp of the terms for rounding in the formula and the subtraction; each check
also asserts that this tolerance is below 1e-8 of the variance, so it cannot pass vacuously.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.special
import scipy.stats
import torch

from kerneltheory import theory
from kerneltheory.spectral.gaussian import Gaussian

F64 = torch.float64
EPS = np.finfo(np.float64).eps
M = 7
QUAD = {"epsabs": 0.0, "epsrel": 1e-13, "limit": 400}


def _phi(w):
    return math.exp(-0.5 * w * w) / math.sqrt(2 * math.pi)


def _gauss_1d(f):
    """(E f(ω), error estimate), ω ~ N(0, 1), on [−40, 40]: every integrand here is at most e^{0.25ω² + 4|ω|}
    times the density, so the mass left outside is below e^{−350}, and nothing overflows inside."""
    return scipy.integrate.quad(lambda w: f(w) * _phi(w), -40.0, 40.0, **QUAD)


def _gauss_2d(f):
    """(E f(ω₁, ω₂), error estimate), ω ~ N(0, I₂), on [−14, 14]² (the Gaussian mass outside is < 1e-44;
    the integrands below grow at most like e^{c‖ω‖} with c ≤ 4, so the neglected part stays < 1e-30)."""
    val, err = scipy.integrate.dblquad(
        lambda w2, w1: f(w1, w2) * _phi(w1) * _phi(w2), -14, 14, -14, 14, epsabs=0.0, epsrel=1e-12
    )
    return val, err + 1e-30


def _numeric_variance(first, second, m=M):
    (mean, e1), (sq, e2) = first, second
    var = (sq - mean * mean) / m
    tol = (e2 + 2 * abs(mean) * e1 + e1 * e1) / m + 64 * EPS * (abs(sq) + mean * mean) / m
    return var, tol


def _check(formula, var, tol):
    formula = float(formula)
    assert tol <= 1e-8 * abs(var), f"quadrature too coarse to test at 1e-8: tol {tol:.3g}, var {var:.3g}"
    assert abs(formula - var) <= tol, f"formula {formula!r} vs numeric {var!r} (tol {tol:.3g})"


def _t(*v):
    return torch.tensor(v, dtype=F64)


POINTS_1D = [(0.3, -0.5), (0.8, 0.4), (-1.1, 0.7)]


# -- general laws, d = 1 -------------------------------------------------------------------------------


@pytest.mark.parametrize("x, y", POINTS_1D)
@pytest.mark.parametrize("weighted", [False, True])
def test_trig_paired_variance(x, y, weighted):
    w2 = math.exp((x * x + y * y) / 2) if weighted else 1.0  # w(x)w(y)
    tau = x - y
    var, tol = _numeric_variance(
        _gauss_1d(lambda w: w2 * math.cos(w * tau)), _gauss_1d(lambda w: (w2 * math.cos(w * tau)) ** 2)
    )
    law = Gaussian(1)
    log_w = (x * x + y * y) / 2 if weighted else 0.0
    formula = theory.trig_paired_variance(law.char_fn(_t(tau)), law.char_fn(_t(2 * tau)), M, log_weight=log_w)
    _check(formula, var, tol)


@pytest.mark.parametrize("x, y", POINTS_1D)
def test_trig_phase_variance(x, y):
    # X = 2 cos(ωx + b) cos(ωy + b), b ~ U[0, 2π): a double integral over (b, ω)
    def expect(f):
        val, err = scipy.integrate.dblquad(
            lambda b, w: f(w, b) * _phi(w) / (2 * math.pi), -14, 14, 0, 2 * math.pi, epsabs=0.0, epsrel=1e-11
        )
        return val, err

    def one(w, b):
        return 2 * math.cos(w * x + b) * math.cos(w * y + b)

    var, tol = _numeric_variance(expect(one), expect(lambda w, b: one(w, b) ** 2))
    law = Gaussian(1)
    _check(theory.trig_phase_variance(law.char_fn(_t(x - y)), law.char_fn(_t(2 * (x - y))), M), var, tol)


@pytest.mark.parametrize("x, y", POINTS_1D)
@pytest.mark.parametrize("h", [0.5, 1.0])  # h(x) = exp(−h‖x‖²): softmax and Gaussian
def test_positive_variance(x, y, h):
    hh = math.exp(-h * (x * x + y * y))
    z = x + y
    var, tol = _numeric_variance(
        _gauss_1d(lambda w: hh * math.exp(w * z)), _gauss_1d(lambda w: (hh * math.exp(w * z)) ** 2)
    )
    law = Gaussian(1)
    formula = theory.positive_variance(math.log(hh), law.log_mgf(_t(z)), law.log_mgf(_t(2 * z)), M)
    _check(formula, var, tol)


@pytest.mark.parametrize("x, y", POINTS_1D)
def test_hyperbolic_variance(x, y):
    hh = math.exp(-0.5 * (x * x + y * y))
    z = x + y
    var, tol = _numeric_variance(
        _gauss_1d(lambda w: hh * math.cosh(w * z)), _gauss_1d(lambda w: (hh * math.cosh(w * z)) ** 2)
    )
    law = Gaussian(1)
    lm = [law.log_mgf(_t(c * z)) for c in (1, -1, 2, -2)]
    _check(theory.hyperbolic_variance(math.log(hh), *lm, M), var, tol)


# -- GERF ------------------------------------------------------------------------------------------


def _gerf_one(a, s, c, x, y):
    """The one-frequency GERF estimate X(ω) (the real paired form for s = −1), x, y ∈ R^d as tuples."""
    d = len(x)
    dd2 = (1 - 4 * a) ** (d / 2)  # D²
    nx, ny = sum(t * t for t in x), sum(t * t for t in y)
    beta = math.sqrt(1 - 4 * a)
    # the quadrature calls this ~10⁵–10⁶ times: the per-coordinate sums are written out for d = 1 and d = 2
    v = [xi + s * yi for xi, yi in zip(x, y, strict=True)]  # x + y (s = 1) or x − y (s = −1)
    outer = math.exp if s == 1 else math.cos
    cxy = c * (nx + ny)
    if d == 1:
        (v1,) = v
        return lambda w: dd2 * math.exp(2 * a * (w * w) + cxy) * outer(beta * (w * v1))
    if d == 2:
        v1, v2 = v
        return lambda w1, w2: dd2 * math.exp(2 * a * (w1 * w1 + w2 * w2) + cxy) * outer(beta * (w1 * v1 + w2 * v2))
    raise ValueError(f"d must be 1 or 2, got {d}")


GERF_CASES = [(a, s, t) for a in (-0.4, 0.0, 0.06) for s in (1, -1) for t in ("softmax", "gaussian")]


@pytest.mark.parametrize("a, s, target", GERF_CASES)
@pytest.mark.parametrize("x, y", POINTS_1D[:2])
def test_gerf_variance_d1(a, s, target, x, y):
    c = -s / 2 if target == "softmax" else -(s + 1) / 2
    one = _gerf_one(a, s, c, (x,), (y,))
    first, second = _gauss_1d(one), _gauss_1d(lambda w: one(w) ** 2)
    var, tol = _numeric_variance(first, second)
    log_k = x * y if target == "softmax" else -0.5 * (x - y) ** 2
    assert abs(first[0] - math.exp(log_k)) <= first[1] + 8 * EPS * math.exp(log_k)  # unbiased, any A
    formula = theory.gerf_variance(_t(x), _t(y), a, s, c, M, torch.tensor(log_k, dtype=F64))
    _check(formula, var, tol)


@pytest.mark.parametrize("s", [1, -1])
def test_gerf_variance_d2(s):
    a, x, y = -0.25, (0.3, -0.4), (0.5, 0.2)
    c = -s / 2
    one = _gerf_one(a, s, c, x, y)
    var, tol = _numeric_variance(_gauss_2d(one), _gauss_2d(lambda w1, w2: one(w1, w2) ** 2))
    log_k = sum(p * q for p, q in zip(x, y, strict=True))
    _check(theory.gerf_variance(_t(*x), _t(*y), a, s, c, M, torch.tensor(log_k, dtype=F64)), var, tol)


def test_positive_variance_d2():
    x, y = (0.3, -0.6), (0.2, 0.5)
    z = [p + q for p, q in zip(x, y, strict=True)]
    hh = math.exp(-0.5 * sum(t * t for t in x + y))

    def one(w1, w2):
        return hh * math.exp(w1 * z[0] + w2 * z[1])

    var, tol = _numeric_variance(_gauss_2d(one), _gauss_2d(lambda w1, w2: one(w1, w2) ** 2))
    _check(theory.softmax_positive_variance(_t(*x), _t(*y), M), var, tol)


def test_gerf_variance_accepts_per_sequence_a():
    x = torch.randn(2, 3, 1, 4, generator=torch.Generator().manual_seed(0), dtype=F64) / 2
    y = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(1), dtype=F64) / 2
    xp, yp = x.unsqueeze(-2), y.unsqueeze(-3)
    a = torch.tensor([-0.3, -0.1], dtype=F64)[:, None, None, None]
    log_k = (xp * yp).sum(-1)
    got = theory.gerf_variance(xp, yp, a, 1, -0.5, M, log_k)
    for i in range(2):
        one = theory.gerf_variance(xp[i], yp[i], float(a[i]), 1, -0.5, M, log_k[i])
        torch.testing.assert_close(got[i], one, rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="1 - 8A"):
        theory.gerf_variance(xp, yp, a + 0.3, 1, -0.5, M, log_k)


# -- DIRF: exact enumeration -----------------------------------------------------------------------


def _series_tail(u: float, k: int, c: float = 1.0) -> float:
    """Bound on Σ_{j>K} c·u^j/j! (u ≥ 0): c·u^{K+1}/(K+1)! / (1 − u/(K+2)), valid when K + 2 > u."""
    return c * u ** (k + 1) / math.factorial(k + 1) / (1 - u / (k + 2))


def _enumerate(pmf, log_f, x, y, u, c):
    """(E f(x)f(y), error), (E (f(x)f(y))², error) by summing over ω ∈ {0..K}^d.

    Per coordinate, the terms of both moments are bounded by c·u^k/k! (the callers derive u and c), so the
    tail after K is at most c·u^{K+1}/(K+1)!/(1 − u/(K+2)) (a geometric majorant, K + 2 > u). Each coordinate
    sum is at least e^{−u} (first moment: e^{x_l y_l}; second: its k = 0 term ≥ 1), so choosing K with that
    tail ≤ 1e-17·e^{−u} makes the relative truncation error of the d-fold product ≤ 2d·1e-17. Rounding of the
    (K + 1)^d-term sum adds at most (K + 1)^d·eps·Σ|terms|.
    """
    d = len(x)
    k = 0
    while k + 2 <= u or _series_tail(u, k, c) > 1e-17 * math.exp(-u):
        k += 1
    grid = np.stack(np.meshgrid(*[np.arange(k + 1)] * d, indexing="ij"), -1).reshape(-1, d)
    prob = np.prod(pmf(grid), axis=-1)
    sign = np.prod(np.sign(x) ** grid * np.sign(y) ** grid, axis=-1)
    ff = sign * np.exp(np.array([log_f(w, x) + log_f(w, y) for w in grid]))
    first, second = float(np.sum(prob * ff)), float(np.sum(prob * ff * ff))
    trunc, rnd = 2 * d * 1e-17, len(grid) * EPS
    err1 = trunc * abs(first) + rnd * float(np.sum(prob * np.abs(ff)))
    err2 = (trunc + rnd) * second
    return (first, err1), (second, err2)


def _log_abs_powers(w, v):
    """Σ_l ω_l log|v_l| with 0⁰ = 1 and 0^k = 0 (log −∞) for k > 0."""
    safe = np.where(v == 0, 1.0, np.abs(v))
    killed = np.any((v == 0) & (w > 0))
    return -np.inf if killed else float(np.sum(w * np.log(safe)))


@pytest.mark.parametrize("x, y", [((0.6,), (-0.9,)), ((0.5, -0.3), (0.8, 0.6)), ((0.0, 1.2), (0.7, -0.4))])
@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_poisrf_variance(x, y, rate):
    x, y = np.array(x), np.array(y)
    d = len(x)

    def log_f(w, v):  # e^{λd/2} Π_l v_l^{ω_l} λ^{−ω_l/2}, in log space
        return rate * d / 2 + _log_abs_powers(w, v) - float(np.sum(w)) * math.log(rate) / 2

    # per coordinate, first-moment terms are t^k/k! and second-moment terms e^λ (t²/λ)^k/k!, t = x_l y_l
    t = float(np.max(np.abs(x * y)))
    pmf = scipy.stats.poisson(rate).pmf
    first, second = _enumerate(pmf, log_f, x, y, max(t, t * t / rate), math.exp(rate))
    var, tol = _numeric_variance(first, second)
    assert abs(first[0] - math.exp(float(x @ y))) <= first[1] + 8 * EPS * first[0]
    _check(theory.poisrf_variance(torch.from_numpy(x), torch.from_numpy(y), rate, M), var, tol)


@pytest.mark.parametrize("x, y", [((0.6,), (-0.9,)), ((0.5, -0.3), (0.8, 0.6)), ((0.0, 1.2), (0.7, -0.4))])
@pytest.mark.parametrize("p", [0.3, 0.7])
def test_geomrf_variance(x, y, p):
    x, y = np.array(x), np.array(y)

    def log_f(w, v):  # Π_l v_l^{ω_l} / √(ω_l! p (1−p)^{ω_l}), in log space
        norm = 0.5 * np.sum(scipy.special.gammaln(w + 1) + math.log(p) + w * math.log1p(-p))
        return _log_abs_powers(w, v) - float(norm)

    # per coordinate, first-moment terms are t^k/k!, second-moment terms (t²/(1−p))^k/(k!² p) ≤ (1/p)·u^k/k!
    t = float(np.max(np.abs(x * y)))
    first, second = _enumerate(scipy.stats.geom(p, loc=-1).pmf, log_f, x, y, max(t, t * t / (1 - p)), 1 / p)
    var, tol = _numeric_variance(first, second)
    assert abs(first[0] - math.exp(float(x @ y))) <= first[1] + 8 * EPS * first[0]
    _check(theory.geomrf_variance(torch.from_numpy(x), torch.from_numpy(y), p, M), var, tol)


def test_dirf_log_kernel_is_x_dot_y():
    x, y = torch.randn(3, 1, 4, dtype=F64), torch.randn(1, 5, 4, dtype=F64)
    torch.testing.assert_close(theory.dirf_log_kernel(x, y), (x * y).sum(-1), rtol=0, atol=0)


# -- specialisations equal the general functions with the Gaussian law's transforms ---------------------


def _xy(d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, d, generator=g, dtype=F64) / 2, torch.randn(4, d, generator=g, dtype=F64) / 2


def test_specialisations_equal_the_general_functions():
    x, y = _xy()
    law = Gaussian(x.shape[-1])
    z, tau = x + y, x - y
    sq = lambda t: (t * t).sum(-1)  # noqa: E731
    k = law.char_fn(tau)
    general_trig = theory.trig_paired_variance(k, law.char_fn(2 * tau), M)
    torch.testing.assert_close(theory.gaussian_kernel_trig_variance(k, M), general_trig, rtol=1e-13, atol=0)
    weighted = theory.trig_paired_variance(k, law.char_fn(2 * tau), M, log_weight=(sq(x) + sq(y)) / 2)
    torch.testing.assert_close(theory.softmax_trig_variance(x, y, M), weighted, rtol=1e-13, atol=0)
    log_hh = -(sq(x) + sq(y)) / 2
    general_pos = theory.positive_variance(log_hh, law.log_mgf(z), law.log_mgf(2 * z), M)
    torch.testing.assert_close(theory.softmax_positive_variance(x, y, M), general_pos, rtol=1e-13, atol=0)
    lm = [law.log_mgf(c * z) for c in (1, -1, 2, -2)]
    general_hyp = theory.hyperbolic_variance(log_hh, *lm, M)
    torch.testing.assert_close(theory.softmax_hyperbolic_variance(x, y, M), general_hyp, rtol=1e-12, atol=0)
    # GERF at A = 0: s = +1 is FAVOR+, s = −1 the weighted trig map
    log_sm = (x * y).sum(-1)
    gerf_plus = theory.gerf_variance(x, y, 0.0, 1, -0.5, M, log_sm)
    gerf_minus = theory.gerf_variance(x, y, 0.0, -1, 0.5, M, log_sm)
    torch.testing.assert_close(gerf_plus, general_pos, rtol=1e-12, atol=0)
    torch.testing.assert_close(gerf_minus, weighted, rtol=1e-12, atol=0)
    # ORF leading term: no correction for a single frequency
    leading = theory.orf_trig_variance_leading(x, y, 1)
    torch.testing.assert_close(leading, theory.gaussian_kernel_trig_variance(k, 1), rtol=1e-14, atol=0)


# -- OPRF, SADERF, ORF bound --------------------------------------------------------------------------


def _dlog_second_moment(a: float, phi_bar: float, d: int) -> float:
    """d/dA of d log(1−4A) − (d/2) log(1−8A) + 2φ̄(1−4A)/(1−8A)."""
    return -4 * d / (1 - 4 * a) + 4 * d / (1 - 8 * a) + 8 * phi_bar / (1 - 8 * a) ** 2


@pytest.mark.parametrize("phi_bar", [1e-6, 0.3, 2.0, 17.0, 400.0])
@pytest.mark.parametrize("d", [1, 4, 64])
def test_oprf_optimal_a_is_the_stationary_point(phi_bar, d):
    a_star = float(theory.oprf_optimal_a(torch.tensor(phi_bar, dtype=F64), d))
    root = scipy.optimize.brentq(
        lambda a: _dlog_second_moment(a, phi_bar, d), -1e7, 0.0, xtol=1e-300, rtol=4 * EPS, maxiter=2000
    )
    assert a_star <= 0 and abs(a_star - root) <= 1e-10 * (1 + abs(root))
    rho = 1 / (1 - 8 * a_star)
    assert abs(2 * phi_bar * rho**2 + (2 * phi_bar + d) * rho - d) <= 1e-12 * (d + phi_bar)


def test_oprf_optimal_a_edges():
    assert float(theory.oprf_optimal_a(torch.tensor(0.0, dtype=F64), 3)) == 0.0
    with pytest.raises(ValueError, match="phi_bar"):
        theory.oprf_optimal_a(torch.tensor(-1e-3, dtype=F64), 3)
    with pytest.raises(ValueError, match="phi_bar"):
        theory.oprf_optimal_a(torch.tensor(math.inf, dtype=F64), 3)


def test_oprf_phi_bar_is_the_mean_pairwise_sq_norm():
    x, y = _xy(seed=3)
    y = y[:3] + 1.0
    direct = ((x[:, None, :] + y[None, :, :]) ** 2).sum(-1).mean()
    torch.testing.assert_close(theory.oprf_phi_bar(x, y)[0, 0], direct, rtol=1e-13, atol=0)
    assert float(theory.oprf_phi_bar(x, -x)) >= 0.0  # every term is ≥ 0: no negative round-off


def test_saderf_scales():
    x, y = _xy(seed=4)
    sq, sk = theory.saderf_optimal_scales(x, y)
    expect = ((y**2).mean(0) / (x**2).mean(0)) ** 0.25
    torch.testing.assert_close(sq[0], expect, rtol=1e-14, atol=0)
    torch.testing.assert_close(sk[0], 1 / expect, rtol=1e-14, atol=0)
    x[:, 0] = 0.0
    sq, sk = theory.saderf_optimal_scales(x, y)
    assert sq[0, 0] == 0 and sk[0, 0] == 0 and bool(torch.isfinite(sq).all() and torch.isfinite(sk).all())


def test_orf_bound_domain():
    """The bound holds for every m: above d the ⌈m/d⌉ independent blocks scale the gain by Σ b(b−1)/m²."""
    x, y = _xy(d=4)
    for m in (1, 4, 5, 16):
        bound = theory.orf_positive_mse_bound(x, y, m)
        iid = theory.softmax_positive_variance(x, y, m)
        assert bool((bound <= iid).all()) and bool((theory.orf_positive_variance(x, y, m) <= bound).all())
    with pytest.raises(ValueError, match="num_features"):
        theory.orf_positive_mse_bound(x, y, 0)


def test_check_gerf_a():
    assert theory.check_gerf_a(-3.0) == -3.0
    for bad in (0.125, 0.2):
        with pytest.raises(ValueError, match="1 - 8A > 0"):
            theory.check_gerf_a(bad)
