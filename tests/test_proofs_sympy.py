"""Symbolic (and a few exact numerical) checks of the steps of the proofs in proofs/.

One test per proof step, named after the proof file it backs. sympy does the integrals, sums and algebra; Gaussian
expectations E[exp(aω² + bω + c)] go through one lemma (completing the square), proved by sympy's own integration in
test_gaussian_integral_lemma and applied term by term by ``expect``; where a step is an integral sympy cannot do
quickly, the square is completed by hand and sympy checks the algebra, or scipy's quadrature checks it with a
tolerance taken from quad's own error estimate. The few checks on the library itself are deterministic identities
(no statistical tolerance): the statistical checks of the same claims live in tests/test_spectral.py,
tests/test_features.py and tests/test_theory.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import integrate as sci_integrate
from scipy import special as sci_special

# ---------------------------------------------------------------------------------------------------
# Shared symbols
# ---------------------------------------------------------------------------------------------------

w = sp.Symbol("omega", real=True)
x, y, t, tau, z, mu = sp.symbols("x y t tau z mu", real=True)
sigma = sp.Symbol("sigma", positive=True)
STD_NORMAL = sp.exp(-(w**2) / 2) / sp.sqrt(2 * sp.pi)  # density of N(0, 1)


def normal_density(mean, std):
    return sp.exp(-((w - mean) ** 2) / (2 * std**2)) / sp.sqrt(2 * sp.pi * std**2)


def gaussian_integral(a, b, c):
    """∫ exp(aω² + bω + c) dω over R for a < 0: √(π/(−a))·exp(c − b²/(4a)) (completing the square; proved by
    :func:`test_gaussian_integral_lemma`)."""
    return sp.sqrt(sp.pi / -a) * sp.exp(c - b**2 / (4 * a))


def expect(expr, density=STD_NORMAL):
    """E[expr(ω)] for ω with the given density on R, as a closed form. The integrand is expanded into terms; a term
    that is a factor free of ω times exp(aω² + bω + c) with a provably negative (sympy's assumptions) is integrated
    by :func:`gaussian_integral`, the lemma proved once by sympy's own integration; any other integrand goes to
    ``sp.integrate`` whole (the Meijer-G integrations of every Gaussian expectation took about half of this file's
    time)."""
    integrand = sp.expand(sp.expand(expr) * density)
    total = sp.Integer(0)
    for term in sp.Add.make_args(integrand):
        free, dep = term.as_independent(w, as_Add=False)
        dep = sp.powsimp(dep, combine="exp")
        if not isinstance(dep, sp.exp):
            return sp.integrate(integrand, (w, -sp.oo, sp.oo))
        try:
            poly = sp.Poly(sp.expand(dep.args[0]), w)
        except sp.PolynomialError:  # an exponent that is not a polynomial in ω (|ω|, cos ω)
            return sp.integrate(integrand, (w, -sp.oo, sp.oo))
        if poly.degree() != 2 or poly.coeff_monomial(w**2).is_negative is not True:
            return sp.integrate(integrand, (w, -sp.oo, sp.oo))
        total += free * gaussian_integral(poly.coeff_monomial(w**2), poly.coeff_monomial(w), poly.coeff_monomial(1))
    return total


def is_zero(expr) -> bool:
    return sp.simplify(expr) == 0


# ---------------------------------------------------------------------------------------------------
# gaussian_transforms.md
# ---------------------------------------------------------------------------------------------------


def test_gaussian_integral_lemma():
    """∫ exp(aω² + bω + c) dω = √(π/(−a))·exp(c − b²/(4a)) for a < 0, by sympy's integration: for real b, and for
    b = iβ (both sides are entire functions of b that agree on the real line, so they agree for every complex b; the
    imaginary axis is checked as well). :func:`expect` integrates every Gaussian term through it, and any other
    integrand (a polynomial factor, a quadratic coefficient of unknown sign, an exponent that is no polynomial in ω)
    through sympy's integration."""
    p = sp.Symbol("p", positive=True)
    b, c = sp.symbols("b c", real=True)
    for lin in (b, sp.I * b):
        lhs = sp.integrate(sp.exp(-p * w**2 + lin * w + c), (w, -sp.oo, sp.oo))
        assert is_zero(lhs - gaussian_integral(-p, lin, c))
    # a term it cannot take (a polynomial factor, a quadratic coefficient of unknown sign) is integrated by sympy
    q = sp.Symbol("q", real=True)
    assert is_zero(expect(w**2) - 1)
    assert isinstance(expect(sp.exp(q * w**2)), sp.Piecewise | sp.Integral)
    # an exponent that is no polynomial in ω: E e^{|ω|} = e^{1/2}(1 + erf(1/√2))
    assert math.isclose(float(expect(sp.exp(sp.Abs(w)))), math.exp(0.5) * (1 + math.erf(0.5**0.5)), rel_tol=1e-12)


def test_gaussian_char_fn_1d():
    """E e^{iωt} = exp(iμt − σ²t²/2) for ω ~ N(μ, σ²); its real part is cos(μt) e^{−σ²t²/2}."""
    psi = expect(sp.exp(sp.I * t * w), normal_density(mu, sigma))
    assert is_zero(psi - sp.exp(sp.I * mu * t - sigma**2 * t**2 / 2))
    assert is_zero(sp.re(sp.expand_complex(psi)) - sp.cos(mu * t) * sp.exp(-(sigma**2) * t**2 / 2))


def test_gaussian_mgf_1d():
    """E e^{zω} = exp(μz + σ²z²/2) for ω ~ N(μ, σ²)."""
    m = expect(sp.exp(z * w), normal_density(mu, sigma))
    assert is_zero(m - sp.exp(mu * z + sigma**2 * z**2 / 2))


def test_gaussian_product_form_d2():
    """d = 2: independent coordinates give the product of the 1-D MGFs; a general Σ = LLᵀ reduces to it."""
    w1, w2 = sp.symbols("w1 w2", real=True)
    z1, z2 = sp.symbols("z1 z2", real=True)
    s1, s2 = sp.symbols("s1 s2", positive=True)
    dens = sp.exp(-(w1**2) / (2 * s1**2) - w2**2 / (2 * s2**2)) / (2 * sp.pi * s1 * s2)
    inner = sp.integrate(sp.exp(z1 * w1 + z2 * w2) * dens, (w1, -sp.oo, sp.oo))
    m = sp.integrate(inner, (w2, -sp.oo, sp.oo))
    assert is_zero(m - sp.exp(s1**2 * z1**2 / 2) * sp.exp(s2**2 * z2**2 / 2))
    # ω = μ + Lε: E e^{ωᵀz} = e^{μᵀz} Π_l E e^{ε_l (Lᵀz)_l} = e^{μᵀz + ½ Σ_l (Lᵀz)_l²} and Σ_l (Lᵀz)_l² = zᵀΣz.
    l11, l21, l22 = sp.symbols("l11 l21 l22", real=True)
    L = sp.Matrix([[l11, 0], [l21, l22]])
    zz = sp.Matrix([z1, z2])
    u = L.T * zz
    assert is_zero(sum(ui**2 for ui in u) - (zz.T * (L * L.T) * zz)[0, 0])


def test_gaussian_cos_expectation():
    """E cos(ωτ) = exp(−τ²/2) for ω ~ N(0, 1) (the Gaussian kernel K_1 in 1-D)."""
    val = sp.re(sp.expand_complex(expect(sp.exp(sp.I * tau * w))))
    assert is_zero(val - sp.exp(-(tau**2) / 2))


def test_gaussian_tilted_mgf_1d():
    """E[e^{aω² + zω}] = (1 − 2aσ²)^{−1/2} exp(σ²z²/(2(1 − 2aσ²))) for ω ~ N(0, σ²), with c = 1 − 2aσ² > 0."""
    c = sp.Symbol("c", positive=True)
    a = (1 - c) / (2 * sigma**2)  # so that 1 − 2aσ² = c > 0
    val = expect(sp.exp(a * w**2 + z * w), normal_density(0, sigma))
    assert is_zero(val - c ** sp.Rational(-1, 2) * sp.exp(sigma**2 * z**2 / (2 * c)))


def test_gaussian_tilted_char_fn_1d():
    """E[e^{aω²} cos(ωτ)] = (1 − 2aσ²)^{−1/2} exp(−σ²τ²/(2(1 − 2aσ²)))."""
    c = sp.Symbol("c", positive=True)
    a = (1 - c) / (2 * sigma**2)
    val = expect(sp.exp(a * w**2 + sp.I * tau * w), normal_density(0, sigma))
    assert is_zero(
        sp.re(sp.expand_complex(val)) - c ** sp.Rational(-1, 2) * sp.exp(-(sigma**2) * tau**2 / (2 * c))
    )


def test_gaussian_transforms_match_library():
    """The closed forms of kerneltheory.spectral.Gaussian agree with the sympy expressions at a few points."""
    from kerneltheory.spectral import Gaussian

    law = Gaussian(1, std=0.7)
    for val in (0.0, 0.3, -1.1):
        arg = torch.tensor([val], dtype=torch.float64)
        s = 0.7
        assert math.isclose(float(law.char_fn(arg)), math.exp(-(s**2) * val**2 / 2), rel_tol=1e-13)
        assert math.isclose(float(law.mgf(arg)), math.exp(s**2 * val**2 / 2), rel_tol=1e-13)
        a = 0.4
        c = 1 - 2 * a * s**2
        assert math.isclose(
            float(law.tilted_mgf(a, arg)), c**-0.5 * math.exp(s**2 * val**2 / (2 * c)), rel_tol=1e-13
        )
        assert math.isclose(
            float(law.tilted_char_fn(a, arg)), c**-0.5 * math.exp(-(s**2) * val**2 / (2 * c)), rel_tol=1e-13
        )


# ---------------------------------------------------------------------------------------------------
# one_rule.md, trig_unbiased.md, positive_unbiased.md
# ---------------------------------------------------------------------------------------------------


def test_one_rule_trig_product():
    """cos a cos b + sin a sin b = cos(a − b): paired features multiply to cos(ωᵀτ), whose mean is Re ψ(τ)."""
    a, b = sp.symbols("a b", real=True)
    assert is_zero(sp.expand_trig(sp.cos(a) * sp.cos(b) + sp.sin(a) * sp.sin(b) - sp.cos(a - b)))
    # with the identity applied, E cos(ω(x − y)) = Re E e^{iω(x−y)} = e^{−(x−y)²/2} for ω ~ N(0, 1)
    val = sp.re(sp.expand_complex(expect(sp.exp(sp.I * w * (x - y)))))
    assert is_zero(val - sp.exp(-((x - y) ** 2) / 2))


def test_one_rule_positive_product():
    """h(x)e^{ωx}·h(y)e^{ωy} = h(x)h(y)e^{ω(x+y)}; its mean is h(x)h(y)M(x + y) (1-D, N(μ, σ²))."""
    hx, hy = sp.symbols("h_x h_y", positive=True)
    val = expect(hx * sp.exp(w * x) * hy * sp.exp(w * y), normal_density(mu, sigma))
    assert is_zero(val - hx * hy * sp.exp(mu * (x + y) + sigma**2 * (x + y) ** 2 / 2))


def test_softmax_gaussian_identity():
    """SM = e^{‖x‖²/2} K_1 e^{‖y‖²/2}: with a = ‖x‖², b = ‖y‖², c = xᵀy, ‖τ‖² = a + b − 2c."""
    a, b = sp.symbols("a b", nonnegative=True)
    c = sp.Symbol("c", real=True)
    assert is_zero(sp.exp(a / 2) * sp.exp(-(a + b - 2 * c) / 2) * sp.exp(b / 2) - sp.exp(c))


def test_trig_phase_unbiased():
    """E_b[2 cos(p + b) cos(q + b)] = cos(p − q) for b ~ U[0, 2π]."""
    p, q, b = sp.symbols("p q b", real=True)
    val = sp.integrate(2 * sp.cos(p + b) * sp.cos(q + b), (b, 0, 2 * sp.pi)) / (2 * sp.pi)
    assert is_zero(sp.expand_trig(val - sp.cos(p - q)))


def test_positive_unbiased_1d():
    """E[h(x)e^{ωx} h(y)e^{ωy}] for ω ~ N(0, 1): h = e^{−x²/2} gives e^{xy} (SM); h = e^{−x²} gives e^{−(x−y)²/2}."""
    m = expect(sp.exp(w * (x + y)))
    assert is_zero(sp.exp(-(x**2) / 2 - y**2 / 2) * m - sp.exp(x * y))
    assert is_zero(sp.exp(-(x**2) - y**2) * m - sp.exp(-((x - y) ** 2) / 2))


# ---------------------------------------------------------------------------------------------------
# trig_variance.md
# ---------------------------------------------------------------------------------------------------

k = sp.Symbol("k", positive=True)  # k = K_1(x, y) ∈ (0, 1]
psi1, psi2 = sp.symbols("psi_tau psi_2tau", real=True)
m_sym = sp.Symbol("m", positive=True, integer=True)


def test_trig_paired_second_moment():
    """cos²u = (1 + cos 2u)/2, and for ω ~ N(0, 1): E cos²(ωτ) = (1 + e^{−2τ²})/2 = (1 + K(2τ))/2."""
    u = sp.Symbol("u", real=True)
    assert is_zero(sp.expand_trig(sp.cos(u) ** 2 - (1 + sp.cos(2 * u)) / 2))
    val = sp.re(sp.expand_complex(expect((1 + sp.exp(2 * sp.I * tau * w)) / 2)))
    assert is_zero(val - (1 + sp.exp(-2 * tau**2)) / 2)


def test_trig_paired_variance_gaussian():
    """General ((1 + ψ(2τ))/2 − ψ²)/m with ψ(2τ) = k⁴ equals (1 − k²)²/(2m) and (1/D)(1 + K(2τ) − 2k²), D = 2m."""
    general = ((1 + psi2) / 2 - psi1**2) / m_sym
    gauss = general.subs({psi1: k, psi2: k**4})
    assert is_zero(gauss - (1 - k**2) ** 2 / (2 * m_sym))
    assert is_zero(gauss - (1 + k**4 - 2 * k**2) / (2 * m_sym))
    # K(2τ) = exp(−‖2τ‖²/2) = (exp(−‖τ‖²/2))⁴
    s = sp.Symbol("s", nonnegative=True)  # ‖τ‖²
    assert is_zero(sp.exp(-4 * s / 2) - sp.exp(-s / 2) ** 4)


def test_trig_phase_variance():
    """E_b[(2 cos(p+b) cos(q+b))²] = 1 + cos(2(p − q))/2, hence Var = (1 + ψ(2τ)/2 − ψ(τ)²)/D."""
    p, q, b = sp.symbols("p q b", real=True)
    second = sp.integrate(sp.expand((2 * sp.cos(p + b) * sp.cos(q + b)) ** 2), (b, 0, 2 * sp.pi)) / (
        2 * sp.pi
    )
    assert is_zero(sp.expand_trig(second - 1 - sp.cos(2 * (p - q)) / 2))


def test_trig_paired_never_worse_gaussian():
    """At equal D: D·(Var_phase − Var_paired) = ψ(τ)² − ψ(2τ)/2, which is k²(2 − k²)/2 ≥ 0 for the Gaussian."""
    dd = sp.Symbol("D", positive=True)
    phase = (1 + psi2 / 2 - psi1**2) / dd
    paired = (1 + psi2 - 2 * psi1**2) / dd  # ((1 + ψ(2τ))/2 − ψ²)/m with m = D/2
    assert is_zero(sp.expand(dd * (phase - paired)) - (psi1**2 - psi2 / 2))
    gap = (psi1**2 - psi2 / 2).subs({psi1: k, psi2: k**4})
    assert is_zero(gap - k**2 * (2 - k**2) / 2)
    # a law for which phase beats paired: ωτ ∈ {0, π} with probability ½ each (ψ(τ) = 0, ψ(2τ) = 1)
    psi_t = (sp.cos(0) + sp.cos(sp.pi)) / 2
    psi_2t = (sp.cos(0) + sp.cos(2 * sp.pi)) / 2
    assert psi_t**2 - psi_2t / 2 < 0


def test_trig_softmax_variance():
    """w(x)²w(y)²(1 − k²)²/(2m) with w = e^{‖·‖²/2} equals (1/2m)e^{‖z‖²}SM⁻²(1 − e^{−‖τ‖²})² (MATH.md §4)."""
    a, b = sp.symbols("a b", nonnegative=True)
    c = sp.Symbol("c", real=True)
    tau2, z2 = a + b - 2 * c, a + b + 2 * c
    kk = sp.exp(-tau2 / 2)
    ours = sp.exp(a + b) * (1 - kk**2) ** 2 / (2 * m_sym)
    math_md = sp.exp(z2) * sp.exp(c) ** -2 * (1 - sp.exp(-tau2)) ** 2 / (2 * m_sym)
    assert is_zero(ours - math_md)


def test_trig_variance_matches_library():
    from kerneltheory import theory

    kk = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    general = theory.trig_paired_variance(kk, kk**4, 7)
    assert torch.allclose(general, theory.gaussian_kernel_trig_variance(kk, 7), rtol=1e-13, atol=0)
    phase = theory.trig_phase_variance(kk, kk**4, 14)
    assert bool((phase - general > 0).all())


# ---------------------------------------------------------------------------------------------------
# positive_variance.md
# ---------------------------------------------------------------------------------------------------


def _norm_symbols():
    a, b = sp.symbols("a b", nonnegative=True)  # ‖x‖², ‖y‖²
    c = sp.Symbol("c", real=True)  # xᵀy
    return a, b, c, a + b + 2 * c  # ‖z‖²


def test_positive_variance_softmax():
    """h²h²M(2z) − (hhM(z))² with h = e^{−‖·‖²/2}, M(z) = e^{‖z‖²/2} equals e^{‖z‖²}SM²(1 − e^{−‖z‖²})."""
    a, b, c, z2 = _norm_symbols()
    hh = sp.exp(-(a + b) / 2)
    general = hh**2 * sp.exp(4 * z2 / 2) - (hh * sp.exp(z2 / 2)) ** 2
    assert is_zero(general - sp.exp(z2) * sp.exp(2 * c) * (1 - sp.exp(-z2)))


def test_hyperbolic_variance_softmax():
    """h²h²[(M(2z) + M(−2z) + 2)/4 − ((M(z) + M(−z))/2)²] = ½(1 − e^{−‖z‖²}) × the positive variance."""
    a, b, c, z2 = _norm_symbols()
    hh = sp.exp(-(a + b) / 2)
    m1, m2 = sp.exp(z2 / 2), sp.exp(2 * z2)  # M(±z), M(±2z) for N(0, I)
    hyper = hh**2 * ((2 * m2 + 2) / 4 - m1**2)
    positive = sp.exp(z2) * sp.exp(2 * c) * (1 - sp.exp(-z2))
    assert is_zero(hyper - (1 - sp.exp(-z2)) / 2 * positive)
    # one frequency: ½(e^{u} + e^{−u}) = cosh u and cosh²u = (cosh 2u + 1)/2
    u = sp.Symbol("u", real=True)
    assert is_zero((sp.cosh(2 * u) + 1) / 2 - sp.cosh(u) ** 2)


def test_positive_kurtosis():
    """Y = e^{ωᵀz}, ω ~ N(0, I): E Y^k = e^{k²s/2}; the kurtosis is
    (e^{8s} − 4e^{5s} + 6e^{3s} − 3e^{2s})/(e^{2s}(e^s − 1)²) ~ e^{4s}."""
    s = sp.Symbol("s", positive=True)
    mom = [sp.exp(kk**2 * s / 2) for kk in range(5)]
    mu4 = mom[4] - 4 * mom[3] * mom[1] + 6 * mom[2] * mom[1] ** 2 - 3 * mom[1] ** 4
    var = mom[2] - mom[1] ** 2
    assert is_zero(var - sp.exp(s) * (sp.exp(s) - 1))
    beta2 = mu4 / var**2
    assert is_zero(
        beta2
        - (sp.exp(8 * s) - 4 * sp.exp(5 * s) + 6 * sp.exp(3 * s) - 3 * sp.exp(2 * s))
        / (sp.exp(2 * s) * (sp.exp(s) - 1) ** 2)
    )
    assert sp.limit(beta2 / sp.exp(4 * s), s, sp.oo) == 1
    assert 2000 < float(beta2.subs(s, 2)) < 4000


def test_positive_variance_matches_library():
    from kerneltheory import theory

    g = torch.Generator().manual_seed(0)
    xx = 0.4 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    yy = 0.4 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    zz = xx + yy
    log_hh = -0.5 * ((xx**2).sum(-1) + (yy**2).sum(-1))
    lm = lambda v: 0.5 * (v**2).sum(-1)  # noqa: E731 - log M of N(0, I)
    gen = theory.positive_variance(log_hh, lm(zz), lm(2 * zz), 9)
    assert torch.allclose(gen, theory.softmax_positive_variance(xx, yy, 9), rtol=1e-12, atol=0)
    hyp = theory.hyperbolic_variance(log_hh, lm(zz), lm(-zz), lm(2 * zz), lm(-2 * zz), 9)
    assert torch.allclose(hyp, theory.softmax_hyperbolic_variance(xx, yy, 9), rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------------
# gerf.md
# ---------------------------------------------------------------------------------------------------

r_sym = sp.Symbol("r", positive=True)  # r = 1 − 4A > 0 (the mean)
u_sym = sp.Symbol("u", positive=True)  # u = 1 − 8A > 0 (the second moment)


@pytest.mark.parametrize("s", [1, -1])
def test_gerf_normalisation_1d(s):
    """E[f₁(ω, x) f₂(ω, y)] in d = 1 with D² = (1 − 4A)^{1/2}: SM for C = −s/2, K_1 for C = −(s + 1)/2."""
    a = (1 - r_sym) / 4
    bb = sp.sqrt(s * r_sym)  # B = √(s(1 − 4A)), imaginary for s = −1
    mean_part = expect(sp.exp(2 * a * w**2 + bb * w * x + s * bb * w * y))
    for c, target in (
        (sp.Rational(-s, 2), sp.exp(x * y)),
        (sp.Rational(-(s + 1), 2), sp.exp(-((x - y) ** 2) / 2)),
    ):
        val = sp.sqrt(r_sym) * sp.exp(c * (x**2 + y**2)) * mean_part
        assert is_zero(sp.expand_complex(val) - target)


def test_gerf_normalisation_product():
    """Product argument, d = 2: D² = (1 − 4A)^{d/2} and the 1-D factors multiply to the d-dimensional kernel."""
    x1, x2, y1, y2 = sp.symbols("x1 x2 y1 y2", real=True)
    c = sp.Rational(-1, 2)

    def one_dim(xi, yi):  # the 1-D result of test_gerf_normalisation_1d, s = +1, before the C term
        return r_sym ** sp.Rational(-1, 2) * sp.exp((xi + yi) ** 2 / 2)

    d_sq = r_sym ** sp.Rational(2, 2)  # D² = (1 − 4A)^{d/2}, d = 2
    val = d_sq * sp.exp(c * (x1**2 + x2**2 + y1**2 + y2**2)) * one_dim(x1, y1) * one_dim(x2, y2)
    assert is_zero(val - sp.exp(x1 * y1 + x2 * y2))


def test_gerf_domain():
    """1 − 8A > 0 implies 1 − 4A = (1 + (1 − 8A))/2 > 1/2 > 0; the converse fails (A = 1/6)."""
    a = sp.Symbol("A", real=True)
    assert sp.simplify((1 - 4 * a) - (1 + (1 - 8 * a)) / 2) == 0
    assert sp.solve_univariate_inequality(1 - 8 * a > 0, a).equals(
        sp.solve_univariate_inequality(a < sp.Rational(1, 8), a)
    )
    a6 = sp.Rational(1, 6)
    assert 1 - 4 * a6 > 0 and 1 - 8 * a6 < 0


def test_gerf_second_moment_s_plus():
    """E[(f₁f₂)²] (s = +1, d = 1) = (1 − 4A)(1 − 8A)^{−1/2} e^{2C(x²+y²)} exp(2(1 − 4A)/(1 − 8A)·(x + y)²)."""
    a = (1 - u_sym) / 8
    r = 1 - 4 * a
    second = r * expect(sp.exp(4 * a * w**2 + 2 * sp.sqrt(r) * w * (x + y)))  # D⁴ = (1 − 4A)^{d}
    assert is_zero(second - r * u_sym ** sp.Rational(-1, 2) * sp.exp(2 * r / u_sym * (x + y) ** 2))


def test_gerf_second_moment_s_minus_corrected():
    """s = −1: the real estimator D²e^{2Aω²}cos(√(1−4A)ωτ) has second moment
    (1−4A)(1−8A)^{−1/2}·½(1 + exp(−2(1−4A)/(1−8A)τ²)), whereas MATH.md's formula with s = −1 is E[(f₁f₂)²]
    of the complex features; and Re(w)² = (|w|² + Re(w²))/2 links the two (factor e^{2C(x²+y²)} omitted)."""
    a = (1 - u_sym) / 8
    r = 1 - 4 * a
    beta = sp.sqrt(r)
    ratio = 2 * r / u_sym
    # complex square: E[(f₁f₂)²] ∝ E[e^{4Aω²} e^{2iβωτ}]
    complex_sq = r * sp.re(sp.expand_complex(expect(sp.exp(4 * a * w**2 + 2 * sp.I * beta * w * tau))))
    assert is_zero(complex_sq - r * u_sym ** sp.Rational(-1, 2) * sp.exp(-ratio * tau**2))  # MATH.md, s = −1
    # modulus square: E|f₁f₂|² ∝ E[e^{4Aω²}]
    modulus_sq = r * expect(sp.exp(4 * a * w**2))
    assert is_zero(modulus_sq - r * u_sym ** sp.Rational(-1, 2))
    # real estimator: cos² = (1 + cos 2·)/2
    real_sq = (modulus_sq + complex_sq) / 2
    assert is_zero(real_sq - r * u_sym ** sp.Rational(-1, 2) * (1 + sp.exp(-ratio * tau**2)) / 2)
    # at A = 0, C = 1/2 this is paired trig for SM with one frequency: e^{x²+y²}(1 + e^{−2τ²})/2
    assert is_zero(real_sq.subs(u_sym, 1) - (1 + sp.exp(-2 * tau**2)) / 2)


def test_gerf_second_moment_matches_library():
    from kerneltheory import theory

    g = torch.Generator().manual_seed(1)
    xx = 0.5 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    yy = 0.5 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    a, d = -0.3, 3
    r, u = 1 - 4 * a, 1 - 8 * a
    sx, sy = (xx**2).sum(-1), (yy**2).sum(-1)
    for c in (0.5, 0.0):
        base = d * math.log(r) - 0.5 * d * math.log(u) + 2 * c * (sx + sy)
        expected = base + torch.log(0.5 * (1 + torch.exp(-2 * r / u * ((xx - yy) ** 2).sum(-1))))
        assert torch.allclose(
            theory.gerf_second_moment_log(xx, yy, a, -1, c, d), expected, rtol=1e-13, atol=1e-13
        )
    expected = d * math.log(r) - 0.5 * d * math.log(u) - (sx + sy) + 2 * r / u * ((xx + yy) ** 2).sum(-1)
    assert torch.allclose(
        theory.gerf_second_moment_log(xx, yy, a, 1, -0.5, d), expected, rtol=1e-13, atol=1e-13
    )


# ---------------------------------------------------------------------------------------------------
# oprf.md
# ---------------------------------------------------------------------------------------------------

phibar = sp.Symbol("phibar", positive=True)
d_sym = sp.Symbol("d", positive=True)
rho = sp.Symbol("rho", positive=True)


def _oprf_objective(a):
    """Mean over pairs of log E[(f₁f₂)²], s = +1, up to terms free of A (MATH.md §4, mean of ‖x_i + y_j‖² = φ̄)."""
    return d_sym * sp.log(1 - 4 * a) - d_sym / 2 * sp.log(1 - 8 * a) + 2 * (1 - 4 * a) / (1 - 8 * a) * phibar


def test_oprf_objective_mean_over_pairs():
    """mean_{i,j} ‖x_i + y_j‖² = mean‖x‖² + mean‖y‖² + 2 mean(x)ᵀmean(y) (n = 2 queries, 3 keys, d = 2)."""
    xs = [sp.Matrix(sp.symbols(f"x{i}_1 x{i}_2", real=True)) for i in range(2)]
    ys = [sp.Matrix(sp.symbols(f"y{j}_1 y{j}_2", real=True)) for j in range(3)]
    lhs = sum(((xi + yj).T * (xi + yj))[0, 0] for xi in xs for yj in ys) / 6
    xbar, ybar = sum(xs, sp.zeros(2, 1)) / 2, sum(ys, sp.zeros(2, 1)) / 3
    rhs = (
        sum((xi.T * xi)[0, 0] for xi in xs) / 2
        + sum((yj.T * yj)[0, 0] for yj in ys) / 3
        + 2 * (xbar.T * ybar)[0, 0]
    )
    assert sp.expand(lhs - rhs) == 0


def test_oprf_stationarity_root():
    """dL/dA at A = (1 − 1/ρ)/8 is 4ρ/(ρ + 1) · (2φ̄ρ² + (2φ̄ + d)ρ − d); ρ* is the positive root."""
    a = sp.Symbol("A", real=True)
    dl = sp.diff(_oprf_objective(a), a).subs(a, (1 - 1 / rho) / 8)
    quad = 2 * phibar * rho**2 + (2 * phibar + d_sym) * rho - d_sym
    assert is_zero(dl - 4 * rho / (rho + 1) * quad)
    root = (sp.sqrt((2 * phibar + d_sym) ** 2 + 8 * d_sym * phibar) - 2 * phibar - d_sym) / (4 * phibar)
    assert is_zero(quad.subs(rho, root))
    # the other root is negative (product of the roots −d/(2φ̄) < 0), so ρ* is the only stationary point in ρ > 0
    other = (-sp.sqrt((2 * phibar + d_sym) ** 2 + 8 * d_sym * phibar) - 2 * phibar - d_sym) / (4 * phibar)
    assert is_zero(root * other + d_sym / (2 * phibar))
    # in ρ: L = d log(ρ + 1) − (d/2) log ρ + ρφ̄ + const, so L → +∞ at both ends of (0, ∞)
    lrho = sp.expand_log(_oprf_objective(a).subs(a, (1 - 1 / rho) / 8), force=True)
    target = d_sym * sp.log(rho + 1) - d_sym / 2 * sp.log(rho) + rho * phibar
    assert sp.simplify(sp.diff(lrho - target, rho)) == 0


def test_oprf_stable_form():
    """(√Δ − 2φ̄ − d)/(4φ̄) = 2d/(√Δ + 2φ̄ + d), Δ = (2φ̄ + d)² + 8dφ̄; at φ̄ = 0 the stable form gives ρ* = 1."""
    sq = sp.sqrt((2 * phibar + d_sym) ** 2 + 8 * d_sym * phibar)
    root = (sq - 2 * phibar - d_sym) / (4 * phibar)
    stable = 2 * d_sym / (sq + 2 * phibar + d_sym)
    assert is_zero(sp.radsimp(root - stable)) or is_zero(
        sp.expand((sq - 2 * phibar - d_sym) * (sq + 2 * phibar + d_sym)) - 8 * d_sym * phibar
    )
    assert sp.expand((sq - 2 * phibar - d_sym) * (sq + 2 * phibar + d_sym) - 8 * d_sym * phibar) == 0
    assert sp.limit(stable, phibar, 0) == 1


def test_oprf_a_star_nonpositive():
    """The quadratic at ρ = 1 equals 4φ̄ ≥ 0 and is increasing past ρ*, so ρ* ≤ 1 and A* = (1 − 1/ρ*)/8 ≤ 0."""
    quad = 2 * phibar * rho**2 + (2 * phibar + d_sym) * rho - d_sym
    assert sp.expand(quad.subs(rho, 1) - 4 * phibar) == 0
    from kerneltheory import theory

    for d in (1, 4, 64):
        for pb in (0.0, 1e-9, 0.5, 3.0, 1e4):
            a_star = float(theory.oprf_optimal_a(torch.tensor(pb, dtype=torch.float64), d))
            assert a_star <= 0.0
            rho_star = 1.0 / (1.0 - 8.0 * a_star)
            assert abs(2 * pb * rho_star**2 + (2 * pb + d) * rho_star - d) < 1e-9 * max(1.0, d + pb)


def test_oprf_shared_a():
    """Different A on the two sides biases the estimate: at x = y = 0, E f₁f₂ = ((1−4A₁)(1−4A₂))^{d/4}/(1−2A₁−2A₂)^{d/2}
    which is < 1 = SM(0, 0) unless A₁ = A₂ (AM–GM)."""
    a1, a2 = sp.symbols("A1 A2", real=True)
    # E e^{(A₁+A₂)ω²} = (1 − 2(A₁ + A₂))^{−1/2} in 1-D; check one instance symbolically, then the inequality
    val = expect(sp.exp(-sp.Rational(3, 8) * w**2))
    assert is_zero(val - (1 + sp.Rational(3, 4)) ** sp.Rational(-1, 2))
    ratio = ((1 - 4 * a1) * (1 - 4 * a2)) / (1 - 2 * a1 - 2 * a2) ** 2  # (E f₁f₂)^{4/d}
    assert sp.factor(1 - ratio) == sp.factor(4 * (a1 - a2) ** 2 / (1 - 2 * a1 - 2 * a2) ** 2)


# ---------------------------------------------------------------------------------------------------
# saderf.md
# ---------------------------------------------------------------------------------------------------


def test_saderf_invariance():
    """(Ψx)ᵀ(Ψ⁻¹y) = xᵀy for diagonal Ψ with positive entries (d = 3)."""
    ps = sp.symbols("psi1:4", positive=True)
    xs, ys = sp.Matrix(sp.symbols("x1:4", real=True)), sp.Matrix(sp.symbols("y1:4", real=True))
    psi = sp.diag(*ps)
    assert sp.simplify(((psi * xs).T * (psi.inv() * ys))[0, 0] - (xs.T * ys)[0, 0]) == 0


def test_saderf_objective_through_phibar():
    """With C = −1/2 the Ψ-dependent part of the OPRF objective is (ρ+1)φ̄ − (X + Y) = ρφ̄ + 2x̄ᵀȳ, where
    X = mean‖Ψx‖², Y = mean‖Ψ⁻¹y‖², φ̄ = X + Y + 2x̄ᵀȳ and x̄ᵀȳ is Ψ-invariant: only φ̄(Ψ) matters, increasingly."""
    xx_, yy_, cross = sp.symbols("X Y c", real=True)
    phi = xx_ + yy_ + 2 * cross
    assert sp.expand((rho + 1) * phi - (xx_ + yy_) - (rho * phi + 2 * cross)) == 0


def test_saderf_minimiser():
    """F(ψ) = ψ²a + ψ^{−2}b (a = mean x_l², b = mean y_l²) has F'(ψ*) = 0 and F''(ψ*) > 0 at ψ* = (b/a)^{1/4}."""
    p = sp.Symbol("psi", positive=True)
    a, b = sp.symbols("a b", positive=True)
    f = p**2 * a + b / p**2
    p_star = (b / a) ** sp.Rational(1, 4)
    assert is_zero(sp.diff(f, p).subs(p, p_star))
    assert sp.simplify(sp.diff(f, p, 2).subs(p, p_star) - 8 * a) == 0  # 8a > 0
    assert sp.solve(sp.diff(f, p), p) == [p_star]
    assert is_zero(f.subs(p, p_star) - 2 * sp.sqrt(a * b))


# ---------------------------------------------------------------------------------------------------
# dirf.md
# ---------------------------------------------------------------------------------------------------

kk_ = sp.Symbol("k", integer=True, nonnegative=True)
lam = sp.Symbol("lambda", positive=True)
q = sp.Symbol("q", real=True)  # q = x_l y_l


def test_bessel_series():
    """Σ_k t^k/k!² = I₀(2√t)."""
    tt = sp.Symbol("t", positive=True)
    assert sp.summation(tt**kk_ / sp.factorial(kk_) ** 2, (kk_, 0, sp.oo)) == sp.besseli(0, 2 * sp.sqrt(tt))


def test_poisrf_series():
    """Per coordinate: Σ_k P(k)·e^{λ}(q/λ)^k = e^{q} (mean) and Σ_k P(k)·e^{2λ}(q²/λ²)^k = e^{λ + q²/λ}."""
    pk = sp.exp(-lam) * lam**kk_ / sp.factorial(kk_)
    assert is_zero(sp.summation(pk * sp.exp(lam) * (q / lam) ** kk_, (kk_, 0, sp.oo)) - sp.exp(q))
    second = sp.summation(pk * sp.exp(2 * lam) * (q**2 / lam**2) ** kk_, (kk_, 0, sp.oo))
    assert is_zero(second - sp.exp(lam + q**2 / lam))


def test_geomrf_series():
    """P(k) = p(1−p)^k: Σ_k P(k)·q^k/(k! p(1−p)^k) = e^{q}, and the second moment is I₀(2|q|/√(1−p))/p."""
    v = sp.Symbol("v", positive=True)  # v = 1 − p ∈ (0, 1)
    p = 1 - v
    pk = p * v**kk_
    assert is_zero(sp.summation(pk * q**kk_ / (sp.factorial(kk_) * p * v**kk_), (kk_, 0, sp.oo)) - sp.exp(q))
    second = sp.summation(
        pk * q ** (2 * kk_) / (sp.factorial(kk_) ** 2 * p**2 * v ** (2 * kk_)), (kk_, 0, sp.oo)
    )
    assert is_zero(second - sp.besseli(0, 2 * sp.Abs(q) / sp.sqrt(v)) / p)


def test_dirf_variance_matches_library():
    from kerneltheory import theory

    xx = torch.tensor([[0.3, -0.7, 1.1]], dtype=torch.float64)
    yy = torch.tensor([[-0.5, 0.2, 0.4]], dtype=torch.float64)
    lam_, p_, m = 1.5, 0.3, 5
    qq = (xx * yy)[0]
    sm2 = math.exp(2 * float(qq.sum()))
    pois = (math.exp(lam_ * 3 + float((qq**2).sum()) / lam_) - sm2) / m
    geom = (
        math.prod(float(sci_special.i0(2 * abs(v) / math.sqrt(1 - p_))) / p_ for v in qq.tolist()) - sm2
    ) / m
    assert math.isclose(float(theory.poisrf_variance(xx, yy, lam_, m)), pois, rel_tol=1e-12)
    assert math.isclose(float(theory.geomrf_variance(xx, yy, p_, m)), geom, rel_tol=1e-12)


# ---------------------------------------------------------------------------------------------------
# The ±1 product identity (MATH.md §6, used in proofs/README.md)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("b", [1, 2, 3])
def test_cosh_sinh_product_identity(b):
    """exp(β xᵀy) = Π_l (cosh β + x_l y_l sinh β) for all x, y ∈ {±1}^b, symbolically in β; and it is φ(x)ᵀφ(y)
    for the 2^b-dimensional map φ_S(x) = √(cosh^{b−|S|}β sinh^{|S|}β) Π_{l∈S} x_l (β ≥ 0)."""
    beta = sp.Symbol("beta", nonnegative=True)
    subsets = [s for r in range(b + 1) for s in itertools.combinations(range(b), r)]

    def phi(v):
        return [
            sp.sqrt(sp.cosh(beta) ** (b - len(s)) * sp.sinh(beta) ** len(s)) * sp.prod([v[i] for i in s])
            for s in subsets
        ]

    # both differences depend on x, y only through the products x_l·y_l, so many of the 4^b pairs give the same
    # expression: each distinct one is simplified once, and every pair still asserts its own
    simplified = {}

    def vanishes(expr) -> bool:
        if expr not in simplified:
            simplified[expr] = sp.simplify(expr.rewrite(sp.exp)) == 0
        return simplified[expr]

    for xv in itertools.product((-1, 1), repeat=b):
        for yv in itertools.product((-1, 1), repeat=b):
            dot = sum(xi * yi for xi, yi in zip(xv, yv, strict=True))
            prod = sp.prod([sp.cosh(beta) + xi * yi * sp.sinh(beta) for xi, yi in zip(xv, yv, strict=True)])
            assert vanishes(sp.exp(beta * dot) - prod)
            feat = sum(a * c for a, c in zip(phi(xv), phi(yv), strict=True))
            assert vanishes(feat - prod)


# ---------------------------------------------------------------------------------------------------
# arccos.md
# ---------------------------------------------------------------------------------------------------


def test_arccos_2d_reduction():
    """Radial part ∫₀^∞ r³e^{−r²/2}dr = 2; angular part ∫_{θ−π/2}^{π/2} cos α cos(α − θ) dα = ((π − θ)cos θ + sin θ)/2;
    so E[relu(ωᵀx)relu(ωᵀy)] = ‖x‖‖y‖/(2π) · 2 · that = ‖x‖‖y‖(sin θ + (π − θ)cos θ)/(2π)."""
    r, al = sp.symbols("r alpha", positive=True)
    th = sp.Symbol("theta", nonnegative=True)
    assert sp.integrate(r**3 * sp.exp(-(r**2) / 2), (r, 0, sp.oo)) == 2
    ang = sp.integrate(sp.cos(al) * sp.cos(al - th), (al, th - sp.pi / 2, sp.pi / 2))
    assert is_zero(sp.expand_trig(ang - ((sp.pi - th) * sp.cos(th) + sp.sin(th)) / 2))


@pytest.mark.parametrize("theta", [0.0, 0.4, math.pi / 2, 2.0, 3.0, math.pi])
def test_arccos_quad(theta):
    """The 2-D Gaussian integral of relu(u₁) relu(u₁cos θ + u₂ sin θ) against the closed form (‖x‖ = ‖y‖ = 1).

    Integrated over the exact region {u₁ > 0, u₁cos θ + u₂ sin θ > 0} (no kink inside, so quad's error estimate
    is meaningful), truncated to |u| ≤ 12 (the neglected mass is below e^{−70})."""
    exact = (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2 * math.pi)
    c, s = math.cos(theta), math.sin(theta)

    def f(u2, u1):
        return u1 * (u1 * c + u2 * s) * math.exp(-(u1 * u1 + u2 * u2) / 2) / (2 * math.pi)

    if s < 1e-12:  # θ = 0: the region is u₁ > 0; θ = π: it is empty
        if c < 0:
            assert abs(exact) < 1e-15
            return
        lower = lambda u1: -12.0  # noqa: E731
    else:
        lower = lambda u1: min(12.0, max(-12.0, -u1 * c / s))  # noqa: E731
    val, err = sci_integrate.dblquad(f, 0.0, 12.0, lower, 12.0, epsabs=1e-12, epsrel=1e-12)
    assert abs(val - exact) <= 10 * err + 1e-13


def test_arccos_matches_library():
    from kerneltheory import kernels

    xx = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    for theta in (0.3, 1.7, 3.0):
        yy = 2.0 * torch.tensor([[math.cos(theta), math.sin(theta)]], dtype=torch.float64)
        exact = 2.0 * (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2 * math.pi)
        assert math.isclose(float(kernels.arccos1(xx, yy)), exact, rel_tol=1e-12)


# ---------------------------------------------------------------------------------------------------
# orthogonal_rows.md
# ---------------------------------------------------------------------------------------------------


def test_orthogonal_polar_decomposition():
    """χ_d density of r = ‖ω‖ divided by r^{d−1}|S^{d−1}| is the N(0, I_d) density (2π)^{−d/2}e^{−r²/2}."""
    r = sp.Symbol("r", positive=True)
    dd = sp.Symbol("d", positive=True, integer=True)
    chi_pdf = r ** (dd - 1) * sp.exp(-(r**2) / 2) / (2 ** (dd / 2 - 1) * sp.gamma(dd / 2))
    sphere_area = 2 * sp.pi ** (dd / 2) / sp.gamma(dd / 2)
    assert is_zero(chi_pdf / (r ** (dd - 1) * sphere_area) - (2 * sp.pi) ** (-dd / 2) * sp.exp(-(r**2) / 2))


def test_orthogonal_qr_sign_fold():
    """torch.linalg.qr (LAPACK Householder) returns Q₁₁ < 0 for every 2×2 or 3×3 input and Q = [1] for 1×1:
    not Haar. After the fold Q·diag(sign R_jj) the first column is g₁/‖g₁‖ (uniform on the sphere)."""
    g = torch.Generator().manual_seed(0)
    for d in (2, 3):
        gm = torch.randn(2000, d, d, generator=g, dtype=torch.float64)
        qm, rm = torch.linalg.qr(gm)
        assert bool((qm[:, 0, 0] < 0).all())
        signs = torch.where(torch.diagonal(rm, dim1=-2, dim2=-1) >= 0, 1.0, -1.0).to(qm.dtype)
        folded = qm * signs.unsqueeze(-2)
        assert torch.allclose(
            folded[:, :, 0], gm[:, :, 0] / gm[:, :, 0].norm(dim=-1, keepdim=True), atol=1e-12
        )
        assert bool((torch.diagonal(signs.unsqueeze(-1) * rm, dim1=-2, dim2=-1) > 0).all())
    q1, _ = torch.linalg.qr(torch.tensor([[-2.0]], dtype=torch.float64))
    assert float(q1) == 1.0


def test_orthogonal_unfolded_bias():
    """Without the fold (LAPACK convention) the first coordinate of row 1 is −|g|, g ~ N(0, 1):
    E e^{−t|g|} = 2e^{t²/2}Φ(−t) < e^{t²/2} (the Gaussian MGF) for t > 0."""
    tt = sp.Symbol("t", positive=True)
    half = 2 * sp.integrate(sp.exp(-tt * w) * STD_NORMAL, (w, 0, sp.oo))
    assert is_zero(half - sp.exp(tt**2 / 2) * sp.erfc(tt / sp.sqrt(2)))  # = 2e^{t²/2}Φ(−t)
    assert float((half / sp.exp(tt**2 / 2)).subs(tt, 1)) < 0.32


def test_orthogonal_library_rows():
    """Rows of one Orthogonal block are exactly orthogonal, and rows / norms are the folded Haar rows."""
    from kerneltheory.spectral import Orthogonal

    wm = Orthogonal(5).sample(5, torch.Generator().manual_seed(3), batch=4)
    norms = wm.norm(dim=-1, keepdim=True)
    unit = wm / norms
    assert torch.allclose(
        unit @ unit.transpose(-1, -2), torch.eye(5, dtype=torch.float64).expand(4, 5, 5), atol=1e-12
    )


# ---------------------------------------------------------------------------------------------------
# fastfood_rows.md
# ---------------------------------------------------------------------------------------------------


def test_fastfood_row_norm_symbolic():
    """d' = 4: every row of (1/√d') S H G Π H B has norm exactly s_i when S_ii = s_i/‖g‖ (symbolic g, B = ±1)."""
    dp = 4
    h = sp.Matrix([[(-1) ** bin(i & j).count("1") for j in range(dp)] for i in range(dp)])
    gs = sp.symbols("g1:5", real=True)
    bs = sp.symbols("b1:5", real=True)
    perm = sp.Matrix(dp, dp, lambda i, j: 1 if j == (2, 0, 3, 1)[i] else 0)
    core = h * sp.diag(*gs) * perm * h * sp.diag(*bs)
    gnorm2 = sum(gi**2 for gi in gs)
    for i in range(dp):
        row_sq = sp.expand(sum(core[i, j] ** 2 for j in range(dp)))
        row_sq = row_sq.subs({bi**2: 1 for bi in bs})
        # ‖row of H G Π H B‖² = d'·‖g‖², so ‖(1/√d')(s_i/‖g‖)·row‖² = s_i²
        assert sp.expand(row_sq - dp * gnorm2) == 0


def test_fastfood_library_row_norms():
    """The library's Fastfood rows have norm S_ii·‖g‖·... = std·s_i exactly (d = d' = 8)."""
    from kerneltheory.spectral import Fastfood
    from kerneltheory.spectral.fastfood import fastfood_matrix

    law = Fastfood(8, std=1.3)
    params = law.sample_structured(16, torch.Generator().manual_seed(0))
    wm = fastfood_matrix(params, 8, dtype=torch.float64, device="cpu")
    chi_times_std = (params["S"] * params["G"].norm(dim=-1, keepdim=True)).reshape(-1)
    assert torch.allclose(wm.norm(dim=-1), chi_times_std, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------
# structured_bias.md
# ---------------------------------------------------------------------------------------------------


def test_sorf_exact_law_small_d():
    """d = d' = 2: enumerate all 2⁶ sign patterns of √2(HD₁)(HD₂)(HD₃): every row has norm √2 exactly, and
    E cos(ω₁ᵀτ) differs from e^{−‖τ‖²/2}, so the bias does not vanish with m."""
    h = sp.Matrix([[1, 1], [1, -1]]) / sp.sqrt(2)
    first_rows = []
    for signs in itertools.product((-1, 1), repeat=6):
        d1, d2, d3 = (sp.diag(*signs[2 * i : 2 * i + 2]) for i in range(3))
        wm = sp.sqrt(2) * (h * d1) * (h * d2) * (h * d3)
        for i in range(2):
            assert sp.simplify(sum(wm[i, j] ** 2 for j in range(2)) - 2) == 0
        first_rows.append(wm[0, :])
    t1, t2 = sp.Rational(1, 2), sp.Rational(3, 4)
    mean_cos = sum(sp.cos(r[0] * t1 + r[1] * t2) for r in first_rows) / len(first_rows)
    bias = float(mean_cos - sp.exp(-(t1**2 + t2**2) / 2))
    assert abs(bias) > 1e-3


def test_sorf_library_row_norms():
    from kerneltheory.spectral import SORF

    wm = SORF(8, std=0.5).sample(16, torch.Generator().manual_seed(0), batch=3)
    assert torch.allclose(
        wm.norm(dim=-1), torch.full((3, 16), 0.5 * math.sqrt(8), dtype=torch.float64), rtol=1e-12
    )
    assert bool(((wm * 8 / 0.5) - torch.round(wm * 8 / 0.5)).abs().max() < 1e-9)  # entries in (std/d')·Z


# ---------------------------------------------------------------------------------------------------
# qmc.md
# ---------------------------------------------------------------------------------------------------

GRID = 2.0**-32  # h: the cells (GRID_BITS = 32); unscrambled points sit at their centres
FINE = 2.0**-53  # g: the jittered positions of scrambled points (GRID_BITS + JITTER_BITS = 53)


def test_qmc_truncation_point():
    """Scrambled: the extreme node is Φ⁻¹(2^{−54}) ≈ −8.2924 (the lowest g-cell ends at Φ⁻¹(2^{−53}) ≈ −8.2095);
    unscrambled: Φ⁻¹(2^{−33}) ≈ −6.3380 (the lowest h-cell ends at Φ⁻¹(2^{−32}) ≈ −6.2303). The library's
    grids are these, and it reaches the bottom nodes exactly."""
    from kerneltheory.spectral.qmc import GRID_BITS, JITTER_BITS, QuasiMonteCarlo

    assert 2.0**-GRID_BITS == GRID and 2.0 ** -(GRID_BITS + JITTER_BITS) == FINE
    assert abs(float(sci_special.ndtri(FINE / 2)) + 8.2924) < 1e-4
    assert abs(float(sci_special.ndtri(FINE)) + 8.2095) < 1e-4
    assert abs(float(sci_special.ndtri(GRID / 2)) + 6.3380) < 1e-4
    assert abs(float(sci_special.ndtri(GRID)) + 6.2303) < 1e-4
    assert float(QuasiMonteCarlo.snap(np.array(0.0), 0.5 / 2**JITTER_BITS)) == FINE / 2
    assert float(QuasiMonteCarlo.snap(np.array(0.0))) == GRID / 2


def test_qmc_jitter_is_the_fine_snap():
    """(K + (k + ½)/2^21)/2^32 = (J + ½)·2^{−53} with J = K·2^21 + k, and (K, k) ↦ J is a bijection of
    {0..2^32−1}×{0..2^21−1} onto {0..2^53−1} (its inverse is divmod by 2^21): a uniform cell with an independent
    uniform jitter is a uniform J, so t' is the 2^{−53}-snap of a uniform. The library's float64 t' equals
    (2J + 1)·2^{−54} exactly on the lower half, J < 2^52 (proofs/qmc.md, item 6)."""
    from kerneltheory.spectral.qmc import GRID_BITS, JITTER_BITS, QuasiMonteCarlo

    cell, jit = sp.symbols("K k", integer=True, nonnegative=True)
    half = sp.Rational(1, 2)
    lhs = (cell + (jit + half) / 2**JITTER_BITS) / 2**GRID_BITS
    assert sp.simplify(lhs - (cell * 2**JITTER_BITS + jit + half) / 2 ** (GRID_BITS + JITTER_BITS)) == 0
    for cb, jb in ((3, 2), (4, 3)):  # the bijection, exhaustively on small analogues
        fine = sorted(c * 2**jb + j for c in range(2**cb) for j in range(2**jb))
        assert fine == list(range(2 ** (cb + jb)))
    rng = np.random.default_rng(0)
    cells = np.concatenate([[0, 2**31 - 1], rng.integers(0, 2**31, 2000)]).astype(np.int64)
    jits = np.concatenate([[0, 2**21 - 1], rng.integers(0, 2**21, 2000)]).astype(np.int64)
    got = QuasiMonteCarlo.snap(cells.astype(np.float64) * GRID, (jits + 0.5) / 2**JITTER_BITS)
    j_fine = cells * 2**JITTER_BITS + jits
    np.testing.assert_array_equal(got, (2 * j_fine + 1).astype(np.float64) * 2.0**-54)


def _qmc_extreme_sample(monkeypatch, top: bool) -> torch.Tensor:
    """A scrambled sample whose points all lie in the top (bottom) 2^{−32}-cell with the top (bottom) jitter."""
    from kerneltheory.spectral.qmc import GRID_BITS, QuasiMonteCarlo

    law = QuasiMonteCarlo(2, std=1.5)
    cell = 2**GRID_BITS - 1 if top else 0
    monkeypatch.setattr(law, "scrambled_cells", lambda m, generator, r: np.full((r, m, 2), cell, dtype=np.int64))

    def extreme_randint(low, high, size, generator=None, dtype=None):
        return torch.full(size, high - 1 if top else low, dtype=torch.int64)

    monkeypatch.setattr(torch, "randint", extreme_randint)
    return law.sample(3, torch.Generator().manual_seed(0))


def test_qmc_bottom_node(monkeypatch):
    """The lowest jittered node is ½·2^{−53}: ω = σΦ⁻¹(2^{−54}) ≈ −8.29σ, finite."""
    w = _qmc_extreme_sample(monkeypatch, top=False)
    assert torch.equal(w, torch.full_like(w, 1.5 * float(sci_special.ndtri(FINE / 2))))


def test_qmc_top_node(monkeypatch):
    """The highest jittered node is (2^53 − ½)·2^{−53}: ω = σΦ⁻¹(1 − 2^{−54}) ≈ 8.29σ, finite, the mirror
    image of the bottom node (float64 would round the direct sum to 1 and give +∞; jittered_ppf uses the
    symmetry Φ⁻¹(1 − u) = −Φ⁻¹(u) with an exact u)."""
    w = _qmc_extreme_sample(monkeypatch, top=True)
    assert torch.equal(w, torch.full_like(w, -1.5 * float(sci_special.ndtri(FINE / 2))))


def test_qmc_sobol_digital_shift():
    """XOR with a uniform word is a bijection (exhaustively on 4-bit words), and the library's scrambled cell is
    K = L(x_i) ⊕ Δ: the same L with another shift Δ' gives K ⊕ Δ ⊕ Δ', and every K is a 32-bit word."""
    from kerneltheory.spectral.qmc import GRID_BITS, lms_shift, random_lms_columns

    for a in range(16):
        assert sorted(a ^ delta for delta in range(16)) == list(range(16))
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2**GRID_BITS, (64, 5), generator=gen)
    cols = random_lms_columns(gen, 3, 5)
    shift = torch.randint(0, 2**GRID_BITS, (3, 5), generator=gen)
    other = torch.randint(0, 2**GRID_BITS, (3, 5), generator=gen)
    k, k_other = lms_shift(x, cols, shift), lms_shift(x, cols, other)
    assert torch.equal(k ^ shift[:, None], k_other ^ other[:, None])
    assert bool(((k >= 0) & (k < 2**GRID_BITS)).all())


def test_qmc_halton_grid_and_rounding():
    """Scrambled Halton in base b permutes K_b = ⌈54/log₂b⌉ − 1 digits, so the exact point is uniform on a grid of
    spacing b^{−K_b} ∈ (2^{−54}, b·2^{−54}]; the library's float64 value is within 8·2^{−53} of the exact digit sum
    (exact for b = 2)."""
    from fractions import Fraction

    from kerneltheory.spectral.qmc import (
        _primes,
        halton_digit_count,
        halton_values,
        random_permutations,
        used_digits,
    )

    m = 100
    index = torch.arange(m)
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        for b in _primes(8):
            kb = halton_digit_count(b)
            assert kb == math.ceil(54 / math.log2(b)) - 1
            assert Fraction(1, 2**54) < Fraction(1, b**kb) <= Fraction(b, 2**54)
            perms = random_permutations(gen, kb, torch.full((kb,), b), b)[None]  # [1, K_b, b]
            p = used_digits(m, b, kb)
            t = halton_values(index, b, perms[:, :p], perms[:, p:, 0])[0]
            for i in range(m):
                n, exact = i, Fraction(0)
                for pos in range(kb):
                    n, digit = divmod(n, b)
                    exact += Fraction(int(perms[0, pos, digit]), b ** (pos + 1))
                err = abs(Fraction(float(t[i])) - exact)
                assert err == 0 if b == 2 else err <= Fraction(8, 2**53)


def test_qmc_lipschitz_bias_bound():
    """Coupling ω = Φ⁻¹(U), ω' = Φ⁻¹(snap_s U): E|ω − ω'| ≤ 2s|Φ⁻¹(s)| + 2φ(Φ⁻¹(s)) + 2s|Φ⁻¹(s/2)| =: ε_s, with
    ε_g ≈ 5.51e-15 (scrambled, s = 2^{−53}) and ε_h ≈ 8.8e-9 (the unscrambled limit, s = 2^{−32}); a trig estimate
    (1-Lipschitz in each ωᵀτ) is off by at most ε_s·σ‖τ‖₁."""

    def eps(s):
        t1, t2 = float(sci_special.ndtri(s)), float(sci_special.ndtri(s / 2))
        return 2 * s * abs(t1) + 2 * math.exp(-t1 * t1 / 2) / math.sqrt(2 * math.pi) + 2 * s * abs(t2)

    assert abs(eps(FINE) - 5.51e-15) < 0.01e-15
    assert abs(eps(GRID) - 8.8e-9) < 0.05e-9
    # the end-cell identity ∫₀^s −Φ⁻¹(u) du = φ(Φ⁻¹(s)), checked at a coarser s where quad resolves it
    hh = 1e-3
    val, err = sci_integrate.quad(lambda s: -float(sci_special.ndtri(s)), 0.0, hh, epsabs=1e-14)
    assert (
        abs(val - math.exp(-(float(sci_special.ndtri(hh)) ** 2) / 2) / math.sqrt(2 * math.pi))
        < 10 * err + 1e-12
    )


def _qmc_relative_mgf_bias(zv: float, top: int = 2**20) -> float:
    """(E e^{zω'} − e^{z²/2})/e^{z²/2} for ω' ~ N_g (g = 2^{−53}): the top cells summed in float64 against
    their exact integral Φ̄(T − z); the other cells contribute below 1e-5 of the total (proofs/qmc.md)."""
    k = np.arange(top, dtype=np.float64)
    nodes = -sci_special.ndtri((k + 0.5) * FINE)  # the top cells' nodes Φ⁻¹(1 − (k + ½)g), by symmetry
    disc = FINE * np.exp(zv * nodes - zv * zv / 2).sum()
    cont = sci_special.ndtr(zv + sci_special.ndtri(top * FINE))  # E[e^{zω}; ω > T]/e^{z²/2} = Φ̄(T − z)
    return float(disc - cont)


def _qmc_relative_mgf_bias_mp(zv: float, cells: int = 2**8) -> float:
    """The same in 30-digit mpmath: the top and bottom ``cells`` g-cells summed exactly (nodes by Newton-refined
    Φ⁻¹) against their integrals, the rest by the Euler–Maclaurin midpoint term −(g²/24)(f'(b) − f'(a))."""
    import mpmath as mp

    with mp.workdps(30):
        g, zz = mp.mpf(2) ** -53, mp.mpf(zv)

        def ninv(p):
            u = mp.mpf(float(sci_special.ndtri(float(p))))
            for _ in range(3):
                u -= (mp.ncdf(u) - p) / mp.npdf(u)
            return u

        low = [ninv((j + mp.mpf(1) / 2) * g) for j in range(cells)]  # bottom nodes; the top ones are −low
        edge = -ninv(cells * g)
        scale = mp.e ** (zz * zz / 2)
        top = g * mp.fsum(mp.e ** (-zz * v) for v in low) / scale - mp.ncdf(zz - edge)
        bottom = g * mp.fsum(mp.e ** (zz * v) for v in low) / scale - mp.ncdf(-edge - zz)

        def fprime(u):
            return zz * mp.e ** (zz * u) / mp.npdf(u)

        middle = -(g**2 / 24) * (fprime(edge) - fprime(-edge)) / scale
        return float(top + bottom + middle)


def test_qmc_mgf_bias():
    """Relative MGF bias of N_g: negative, −1.2987e-14, −2.8018e-11, −1.6976e-8 at σz = 1, 2, 3, and growing near
    the truncation point, −3.4497e-6, −2.5096e-4, −6.8255e-3, −0.32776 at σz = 4, 5, 6, 8 (float64 and mpmath
    agree), and within the envelope Φ̄(Φ⁻¹(1 − 2^{−54}) − σz) quoted in kerneltheory.spectral.qmc for
    σz = 0.5, 1, …, 4."""
    t_top = -float(sci_special.ndtri(FINE / 2))
    for zv, approx in ((1.0, -1.2987e-14), (2.0, -2.8018e-11), (3.0, -1.6976e-8), (4.0, -3.4497e-6),
                       (5.0, -2.5096e-4), (6.0, -6.8255e-3), (8.0, -0.32776)):
        rel = _qmc_relative_mgf_bias(zv)
        assert rel < 0 and abs(rel - approx) < 1e-4 * abs(approx)
        assert abs(_qmc_relative_mgf_bias_mp(zv) - rel) < 1e-6 * abs(rel)
    for zv in np.arange(0.5, 4.01, 0.5):
        rel = _qmc_relative_mgf_bias(float(zv))
        assert rel < 0 and abs(rel) < float(sci_special.ndtr(zv - t_top))


def test_qmc_unscrambled_is_deterministic():
    """Unscrambled Sobol': every draw is the same set; its first point is 0, snapped to 2^{−33}: ω₁ = Φ⁻¹(2^{−33})·1."""
    from kerneltheory.spectral import QuasiMonteCarlo

    law = QuasiMonteCarlo(3, scramble=False)
    a = law.sample(4, torch.Generator().manual_seed(0), batch=2)
    b = law.sample(4, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], a[1]) and torch.equal(a[0], b)
    assert torch.allclose(a[0, 0], torch.full((3,), float(sci_special.ndtri(GRID / 2)), dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------
# moment_matched.md
# ---------------------------------------------------------------------------------------------------


def test_moment_matched_m2_exact():
    """d = 1, m = 2, divisor m: the whitened rows are ±1 whatever the draw, so the trig estimate is cos τ,
    not e^{−τ²/2}."""
    e1, e2 = sp.symbols("e1 e2", real=True)
    ebar = (e1 + e2) / 2
    c = ((e1 - ebar) ** 2 + (e2 - ebar) ** 2) / 2
    w1 = sp.simplify((e1 - ebar) / sp.sqrt(c))
    assert sp.simplify(w1**2 - 1) == 0
    from kerneltheory.spectral import MomentMatched

    wm = MomentMatched(1).sample(2, torch.Generator().manual_seed(0), batch=50)
    assert torch.allclose(wm.abs(), torch.ones_like(wm), atol=1e-12)
    assert abs(math.cos(1.0) - math.exp(-0.5)) > 0.06


def test_moment_matched_m3_exact():
    """d = 1, m = 3: ω̃ = √2 cos θ with θ uniform, so E cos(ω̃τ) = J₀(√2τ) ≠ e^{−τ²/2}."""
    for tv in (sp.Rational(1, 2), sp.Integer(1), sp.Integer(2)):
        tf = float(tv)
        val, err = sci_integrate.quad(
            lambda a, tf=tf: math.cos(math.sqrt(2) * math.cos(a) * tf) / (2 * math.pi), 0, 2 * math.pi
        )
        assert abs(val - float(sp.besselj(0, sp.sqrt(2) * tv))) < 10 * err + 1e-13


def test_moment_matched_bias_order():
    """d = 1: ω̃_i = √(m−1)·T, T the first coordinate of a uniform point of S^{m−2}; E ω̃² = 1, E ω̃⁴ = 3(m−1)/(m+1),
    and the exact E cos(ω̃τ) = Γ(n/2)(2/a)^{n/2−1}J_{n/2−1}(a), n = m−1, a = √(m−1)τ, has bias
    ≈ −τ⁴e^{−τ²/2}/(4(m+1))."""
    mm = sp.Symbol("m", positive=True)
    n = mm - 1
    et2, et4 = 1 / n, 3 / (n * (n + 2))  # moments of a coordinate of a uniform point on S^{n−1}
    assert sp.simplify((mm - 1) * et2 - 1) == 0
    assert sp.simplify((mm - 1) ** 2 * et4 - 3 * (mm - 1) / (mm + 1)) == 0
    tv = 1.0
    for m in (20, 80, 320):
        nn = m - 1
        a = math.sqrt(m - 1) * tv
        exact = math.exp(math.lgamma(nn / 2)) * (2 / a) ** (nn / 2 - 1) * float(sci_special.jv(nn / 2 - 1, a))
        bias = exact - math.exp(-(tv**2) / 2)
        lead = -(tv**4) * math.exp(-(tv**2) / 2) / (4 * (m + 1))
        assert abs(bias - lead) < 3 * abs(lead) / m


def test_sphere_coordinate_moments():
    """T_n, the first coordinate of a uniform point of S^{n−1} (density ∝ (1 − t²)^{(n−3)/2}): with
    ∫ t^{2j}(1 − t²)^{(n−3)/2} dt = B(j + ½, (n − 1)/2), E T² = 1/n, E T⁴ = 3/(n(n+2)), E T⁶ = 15/(n(n+2)(n+4));
    for X = √n·T: κ₄ = −6/(n+2), κ₆ = 240/((n+2)(n+4)). The Beta integral itself is checked at n = 4."""
    n = sp.Symbol("n", positive=True)

    def beta(a, b):
        return sp.gamma(a) * sp.gamma(b) / sp.gamma(a + b)

    mom = [
        sp.gammasimp(beta(j + sp.Rational(1, 2), (n - 1) / 2) / beta(sp.Rational(1, 2), (n - 1) / 2))
        for j in range(4)
    ]
    assert sp.simplify(mom[1] - 1 / n) == 0
    assert sp.simplify(mom[2] - 3 / (n * (n + 2))) == 0
    assert sp.simplify(mom[3] - 15 / (n * (n + 2) * (n + 4))) == 0
    x2, x4, x6 = n * mom[1], n**2 * mom[2], n**3 * mom[3]
    assert sp.simplify(x4 - 3 + 6 / (n + 2)) == 0
    assert sp.simplify(x6 - 15 * x4 * x2 + 30 * x2**3 - 240 / ((n + 2) * (n + 4))) == 0
    val, err = sci_integrate.quad(lambda u: u**2 * math.sqrt(1 - u * u), -1, 1)
    assert abs(val - float(beta(sp.Rational(3, 2), sp.Rational(3, 2)))) < 10 * err + 1e-13


def test_moment_matched_projection_law():
    """Library draws (d = 3, m = 6): the means of cos(ω₁ᵀτ) and e^{ω₁ᵀz} match the exact Bessel laws of
    proofs/moment_matched.md item 3 (seeded; |difference| < 5 standard errors), and ‖ω_i‖² ≤ m − 1."""
    from kerneltheory.spectral import MomentMatched

    m, d = 6, 3
    wm = MomentMatched(d).sample(m, torch.Generator().manual_seed(0), batch=20000)
    assert float((wm**2).sum(-1).max()) <= m - 1 + 1e-9
    tau_v = torch.tensor([0.7, -0.4, 0.9], dtype=torch.float64)
    z_v = 0.8 * tau_v
    n = m - 1
    a, b = math.sqrt(m - 1) * float(tau_v.norm()), math.sqrt(m - 1) * float(z_v.norm())
    exact_cos = math.gamma(n / 2) * (2 / a) ** (n / 2 - 1) * float(sci_special.jv(n / 2 - 1, a))
    exact_mgf = math.gamma(n / 2) * (2 / b) ** (n / 2 - 1) * float(sci_special.iv(n / 2 - 1, b))
    for vals, exact in ((torch.cos(wm @ tau_v), exact_cos), (torch.exp(wm @ z_v), exact_mgf)):
        se = float(vals.std()) / math.sqrt(vals.numel())
        assert abs(float(vals.mean()) - exact) < 5 * se
    assert abs(exact_cos - math.exp(-(float(tau_v.norm()) ** 2) / 2)) > 20 * float(
        torch.cos(wm @ tau_v).std()
    ) / math.sqrt(wm[..., 0].numel())


# ---------------------------------------------------------------------------------------------------
# gauss_hermite.md
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_gauss_hermite_moments_exact(n):
    """Nodes √2·x_k (roots of H_n), probabilities w_k/√π: moments of N(0, 1) up to degree 2n − 1, not 2n."""
    xs = sp.Symbol("xs")
    roots = sp.solve(sp.hermite(n, xs), xs)
    weights = [
        2 ** (n - 1) * sp.factorial(n) * sp.sqrt(sp.pi) / (n**2 * sp.hermite(n - 1, r) ** 2) for r in roots
    ]
    probs = [sp.nsimplify(sp.simplify(wk / sp.sqrt(sp.pi))) for wk in weights]
    assert sp.simplify(sum(probs) - 1) == 0
    for j in range(2 * n + 1):
        disc = sp.simplify(sum(p * (sp.sqrt(2) * r) ** j for p, r in zip(probs, roots, strict=True)))
        gauss = 0 if j % 2 else sp.factorial2(j - 1)
        assert (sp.simplify(disc - gauss) == 0) == (j <= 2 * n - 1)


def test_gauss_hermite_mgf_below_gaussian():
    """Library law, n = 8: even moments equal the Gaussian ones below degree 2n, the degree-2n gap is exactly n!
    (the quadrature remainder of x^{2n}), and every higher even moment is smaller; hence M_n(z) < e^{z²/2} for z ≠ 0
    with M(z) − M_n(z) ≈ n! z^{2n}/(2n)! as z → 0 (checked for n = 1, 2, 3), at every m."""
    from kerneltheory.spectral import GaussHermite

    law = GaussHermite(1, nodes=8)
    for j in range(1, 12):
        disc = float((law.probs * law.values ** (2 * j)).sum())
        gauss = float(math.prod(range(1, 2 * j, 2)))
        if 2 * j < 16:
            assert math.isclose(disc, gauss, rel_tol=1e-12)
        elif 2 * j == 16:
            assert math.isclose(gauss - disc, math.factorial(8), rel_tol=1e-9)
        else:
            assert disc < gauss
    for zv in (0.5, 1.0, 2.0, -1.5):
        assert float(law.mgf(torch.tensor([zv], dtype=torch.float64))) < math.exp(zv * zv / 2)
    for n in (1, 2, 3):
        small = GaussHermite(1, nodes=n)
        zv = 0.2
        gap = math.exp(zv * zv / 2) - float(small.mgf(torch.tensor([zv], dtype=torch.float64)))
        lead = math.factorial(n) * zv ** (2 * n) / math.factorial(2 * n)
        assert abs(gap / lead - 1) < 0.03


# ---------------------------------------------------------------------------------------------------
# mixture_kernels.md
# ---------------------------------------------------------------------------------------------------


def test_mixture_char_fn_symmetrised():
    """½[ψ_{N(μ,σ²)} + ψ_{N(−μ,σ²)}](τ) = cos(μτ)e^{−σ²τ²/2}, the real part of either term."""
    plus = expect(sp.exp(sp.I * tau * w), normal_density(mu, sigma))
    minus = expect(sp.exp(sp.I * tau * w), normal_density(-mu, sigma))
    assert is_zero(
        sp.expand_complex((plus + minus) / 2) - sp.cos(mu * tau) * sp.exp(-(sigma**2) * tau**2 / 2)
    )
    assert is_zero(sp.re(sp.expand_complex(plus)) - sp.re(sp.expand_complex(minus)))


def test_mixture_mgf_antithetic_pair():
    """Antithetic pair ω± = ±μ + σε sharing ε: E[½(e^{ω₊z} + e^{ω₋z})] = cosh(μz)e^{σ²z²/2} and
    E[½(cos ω₊τ + cos ω₋τ)] = cos(μτ)e^{−σ²τ²/2}."""
    eps = w
    mgf = expect((sp.exp((mu + sigma * eps) * z) + sp.exp((-mu + sigma * eps) * z)) / 2)
    assert is_zero(mgf.rewrite(sp.exp) - (sp.cosh(mu * z) * sp.exp(sigma**2 * z**2 / 2)).rewrite(sp.exp))
    cf = expect((sp.exp(sp.I * (mu + sigma * eps) * tau) + sp.exp(sp.I * (-mu + sigma * eps) * tau)) / 2)
    assert is_zero(sp.expand_complex(cf) - sp.cos(mu * tau) * sp.exp(-(sigma**2) * tau**2 / 2))


def test_mixture_positive_second_moment():
    """Positive features on a mixture: E[h²h²e^{2ωz}] = h²h²Σ_q w_q e^{2μ_q z + 2σ_q²z²} (the M(2z) of the mixture)."""
    wq = sp.Symbol("w_q", positive=True)
    val = wq * expect(sp.exp(2 * w * z), normal_density(mu, sigma))
    assert is_zero(val - wq * sp.exp(2 * mu * z + 2 * sigma**2 * z**2))


# ---------------------------------------------------------------------------------------------------
# monte_carlo_reference.md
# ---------------------------------------------------------------------------------------------------


def test_monte_carlo_reference_statistic():
    """Var(K̄_R − K̄_N) = σ²/R + σ²/N for independent means; dropping se_N gives a statistic of variance 1 + R/N,
    whose two-sided level-α test rejects with probability 2Φ̄(z_{α/2}/√(1 + R/N)) > α (e.g. α = 1e-6, R = N: ≈ 5e-4)."""
    s2, rr, nn = sp.symbols("sigma2 R N", positive=True)
    var_diff = s2 / rr + s2 / nn  # independent: variances add
    assert sp.simplify(var_diff / (s2 / rr) - (1 + rr / nn)) == 0
    alpha = 1e-6
    zq = -float(sci_special.ndtri(alpha / 2))
    for ratio in (0.1, 1.0, 10.0):
        actual = 2 * float(sci_special.ndtr(-zq / math.sqrt(1 + ratio)))
        assert actual > alpha
    assert 1e-4 < 2 * float(sci_special.ndtr(-zq / math.sqrt(2.0))) < 1e-3


# ---------------------------------------------------------------------------------------------------
# orthogonal_variance.md
# ---------------------------------------------------------------------------------------------------


def test_orthogonal_variance_leading_term():
    """For two orthogonal rows with χ_d norms, X = ω₁ᵀe, Y = ω₂ᵀe: E X²Y² = d²·E[u₁²u₂²] = d/(d+2) where
    E‖g‖⁴ = d(d+2) gives E[u₁²u₂²] = 1/(d(d+2)); the joint cumulant κ₂₂ = −2/(d+2), κ₄(X ± Y) = 6κ₂₂, and
    E cos(z(X ± Y)) ≈ e^{−z²}(1 + κ₄z⁴/24) = e^{−z²}(1 − z⁴/(2(d+2))): the ORF covariance term −e^{−z²}z⁴/(2d)."""
    dd = sp.Symbol("d", positive=True, integer=True)
    e_norm4 = dd * (3) + dd * (dd - 1)  # E(Σ g_l²)² = d·E g⁴ + d(d−1)(E g²)²
    assert sp.expand(e_norm4 - dd * (dd + 2)) == 0
    e_u2u2 = 1 / e_norm4  # E g₁²g₂² = 1 = E‖g‖⁴ · E u₁²u₂² (norm and direction independent)
    exy = dd**2 * e_u2u2  # E s₁²s₂² = d² for independent χ_d norms
    kappa22 = sp.simplify(exy - 1)
    assert sp.simplify(kappa22 + 2 / (dd + 2)) == 0
    kappa4 = 6 * kappa22
    zz = sp.Symbol("z", positive=True)
    assert sp.simplify(kappa4 * zz**4 / 24 + zz**4 / (2 * (dd + 2))) == 0
    # the exact pair covariance (double series) approaches −e^{−ζ²}ζ⁴/(2d) with an O(1/d²) error
    zeta = 1.2
    for d in (64, 256):
        cov = sum(
            (-1) ** (a + b)
            * (zeta**2 / 2) ** (a + b)
            / (math.factorial(a) * math.factorial(b))
            * (float(_r_ab(a, b, d)) - 1)
            for a in range(1, 30)
            for b in range(1, 30)
        )
        lead = -math.exp(-(zeta**2)) * zeta**4 / (2 * d)
        assert abs(cov - lead) < 20 * abs(lead) / d


def _r_ab(a, b, d):
    """E[X^{2a}Y^{2b}]/((2a−1)!!(2b−1)!!) for two orthogonal χ_d-scaled Haar rows: Π_{k<b} (d + 2k)/(d + 2a + 2k)."""
    return sp.prod([(d + 2 * kk) / (d + 2 * a + 2 * kk) for kk in range(b)])


def test_orthogonal_pair_moments():
    """r_ab = (a)_d (b)_d/(a+b)_d, r_ab ≤ d/(d+2) for a, b ≥ 1 (equality at a = b = 1), and
    r_ab = 1 − 2ab/d + O(d^{−2})."""
    dd = sp.Symbol("d", positive=True)

    def poch(a):
        return sp.prod([dd + 2 * j for j in range(a)])

    for a in range(1, 4):
        for b in range(1, 4):
            r = _r_ab(a, b, dd)
            assert sp.simplify(r - poch(a) * poch(b) / poch(a + b)) == 0
            gap = sp.factor(sp.together(dd / (dd + 2) - r))
            num, _ = sp.fraction(gap)
            assert all(c >= 0 for c in sp.Poly(sp.expand(num), dd).coeffs())
            eps = sp.Symbol("eps", positive=True)  # eps = 1/d
            ser = sp.series(r.subs(dd, 1 / eps), eps, 0, 2).removeO()
            assert sp.simplify(ser - (1 - 2 * a * b * eps)) == 0
    assert sp.simplify(_r_ab(1, 1, dd) - dd / (dd + 2)) == 0


def test_performer_theorem2_series():
    """The series steps of proofs/orthogonal_variance.md, and the exact ORF covariance (double series) against
    kerneltheory.theory.orf_positive_mse_bound."""
    aa = sp.Symbol("a", integer=True, positive=True)
    ss, tt = sp.symbols("S t", positive=True)
    assert sp.simplify(sp.factorial2(2 * 3 - 1) / sp.factorial(2 * 3) - 1 / (2**3 * sp.factorial(3))) == 0
    assert is_zero(sp.summation(ss**aa / (2**aa * sp.factorial(aa)), (aa, 1, sp.oo)) - (sp.exp(ss / 2) - 1))
    assert is_zero(
        sp.summation((-1) ** aa * aa * tt**aa / sp.factorial(aa), (aa, 1, sp.oo)) + tt * sp.exp(-tt)
    )
    from kerneltheory import theory

    xx = torch.tensor([[0.3, -0.2, 0.5, 0.1]], dtype=torch.float64)
    yy = torch.tensor([[0.4, 0.1, -0.3, 0.2]], dtype=torch.float64)
    d, m = 4, 3
    s_val = float(((xx + yy) ** 2).sum())
    cov = sum(
        s_val ** (a + b) / (2**a * math.factorial(a) * 2**b * math.factorial(b)) * (float(_r_ab(a, b, d)) - 1)
        for a in range(1, 25)
        for b in range(1, 25)
    )
    hh2 = math.exp(-float((xx**2).sum()) - float((yy**2).sum()))
    var_ort = float(theory.softmax_positive_variance(xx, yy, m)) + (1 - 1 / m) * hh2 * cov
    bound = float(theory.orf_positive_mse_bound(xx, yy, m))
    assert var_ort <= bound + 1e-15
    assert var_ort < float(theory.softmax_positive_variance(xx, yy, m))


# ---------------------------------------------------------------------------------------------------
# positivity.md
# ---------------------------------------------------------------------------------------------------


def test_trig_not_positive():
    """d = m = 1, x = π, y = 0: P(cos(πω) < 0) = Σ_j [Φ(2j + 3/2) − Φ(2j + 1/2)] over j ∈ Z ≈ 0.495 > 0."""
    prob = sum(float(sci_special.ndtr(2 * j + 1.5) - sci_special.ndtr(2 * j + 0.5)) for j in range(-20, 20))
    assert abs(prob - 0.4954) < 1e-3
    # and a negative feature value: cos(π·1) = −1
    assert sp.cos(sp.pi) == -1


def test_positive_features_float_range():
    """exp rounds to 0 below log(half the smallest subnormal): ≈ −745.13 (float64), −103.97 (float32)."""
    for dtype, lo in ((torch.float64, -745.2), (torch.float32, -104.0)):
        assert float(torch.exp(torch.tensor(lo, dtype=dtype))) == 0.0
        assert float(torch.exp(torch.tensor(lo + 1.0, dtype=dtype))) > 0.0


def test_elu_plus_one_rounding():
    """Computed literally as elu(x) + 1 (expm1(x) + 1 for x ≤ 0), the value is exactly 0 once e^x < 2^{−25} in
    float32 (x < −17.33) and 2^{−54} in float64 (x < −37.43); exp(x) itself stays positive far beyond."""
    f = torch.nn.functional.elu
    assert float(f(torch.tensor(-17.4, dtype=torch.float32)) + 1) == 0.0
    assert float(f(torch.tensor(-17.2, dtype=torch.float32)) + 1) > 0.0
    assert float(f(torch.tensor(-37.5, dtype=torch.float64)) + 1) == 0.0
    assert float(f(torch.tensor(-37.3, dtype=torch.float64)) + 1) > 0.0
    assert float(torch.exp(torch.tensor(-17.4, dtype=torch.float32))) > 0.0
    # the library evaluates the piecewise form, so its features stay positive where e^x is representable
    from kerneltheory.features import EluPlusOne

    xs = torch.tensor([[-20.0, -60.0, -103.0, 3.0]], dtype=torch.float32)
    assert bool((EluPlusOne(4).features(xs, None, {}, {}, "query") > 0).all())


# ---------------------------------------------------------------------------------------------------
# deterministic_maps.md
# ---------------------------------------------------------------------------------------------------


def test_hedgehog_kernel_depends_on_sum():
    """Σ_i [e^{u_i(x) + u_i(y)} + e^{−u_i(x) − u_i(y)}] with u_i affine depends on x + y only; SM does not
    (SM(0, 0) = 1, SM(e, −e) = e^{−1}), so the exp-pair map is never the softmax kernel."""
    x1, x2, y1, y2, sh1, sh2 = sp.symbols("x1 x2 y1 y2 s1 s2", real=True)
    wv = sp.Matrix(sp.symbols("w1 w2", real=True))
    bb = sp.Symbol("b", real=True)

    def kern(xv, yv):
        ux, uy = (wv.T * xv)[0, 0] + bb, (wv.T * yv)[0, 0] + bb
        return sp.exp(ux + uy) + sp.exp(-ux - uy)

    xv, yv, sv = sp.Matrix([x1, x2]), sp.Matrix([y1, y2]), sp.Matrix([sh1, sh2])
    assert sp.simplify(kern(xv, yv) - kern(xv + sv, yv - sv)) == 0
    assert sp.exp(0) != sp.exp(-1)


def test_elu_kernel_not_softmax():
    """d = 1: (elu(t) + 1)² = (t + 1)² for t > 0 grows polynomially while SM(t, t) = e^{t²}; they differ at t = 1."""
    tt = sp.Symbol("t", positive=True)
    assert sp.limit((tt + 1) ** 2 / sp.exp(tt**2), tt, sp.oo) == 0
    assert (2**2) != sp.E


def test_deterministic_maps_growth():
    """Library maps: φ(q)ᵀφ(tq) grows at most linearly in t for elu + 1 and the feed-forward map (GELU and GLU),
    and stays ≤ 2 for softmax-normalised Hedgehog, while c(q)·SM(q, tq) = c(q)e^{t‖q‖²} grows exponentially."""
    from kerneltheory.features import EluPlusOne, Feedforward, Hedgehog

    q_v = torch.tensor([[0.5, -0.3, 0.8]], dtype=torch.float64)
    maps = [
        EluPlusOne(3),
        Feedforward(3, seed=0),
        Feedforward(3, seed=1, glu=True),
        Hedgehog(3, normalize=True),
    ]
    for comp in maps:
        vals = []
        for tv in (10.0, 100.0, 1000.0):
            fq = comp.features(q_v, None, {}, {}, "query")
            fk = comp.features(tv * q_v, None, {}, {}, "key")
            vals.append(float((fq * fk).sum().detach()))
        assert all(v > 0 for v in vals)
        if isinstance(comp, Hedgehog):
            assert max(vals) <= 2.0 + 1e-12
        else:
            # ×10 in t multiplies an eventually-affine function by ≈ 10 (a quadratic one by 100, SM by e^{900‖q‖²})
            assert vals[2] <= 20 * vals[1] and vals[1] <= 20 * vals[0] + 1.0


# ---------------------------------------------------------------------------------------------------------------
# normal_sampler.md
# ---------------------------------------------------------------------------------------------------------------


def test_box_muller_jacobian():
    """Item 1: (u, v) ↦ (r cos 2πv, r sin 2πv), r = √(−2 log(1 − u)), has Jacobian determinant 2π/(1 − u), so the
    density of (z₁, z₂) is (1 − u)/(2π) = e^{−(z₁² + z₂²)/2}/(2π); item 2's radius bounds √(106 log 2), √(48 log 2)."""
    u, v = sp.symbols("u v", positive=True)
    r = sp.sqrt(-2 * sp.log(1 - u))
    z1, z2 = r * sp.cos(2 * sp.pi * v), r * sp.sin(2 * sp.pi * v)
    jac = sp.Matrix([[sp.diff(z1, u), sp.diff(z1, v)], [sp.diff(z2, u), sp.diff(z2, v)]]).det()
    assert sp.simplify(jac - 2 * sp.pi / (1 - u)) == 0
    density = 1 / jac
    assert sp.simplify(density - sp.exp(-(z1**2 + z2**2) / 2) / (2 * sp.pi)) == 0
    assert sp.simplify(r.subs(u, 1 - sp.Integer(2) ** -53) - sp.sqrt(106 * sp.log(2))) == 0
    assert sp.simplify(r.subs(u, 1 - sp.Integer(2) ** -24) - sp.sqrt(48 * sp.log(2))) == 0
