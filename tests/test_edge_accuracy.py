"""The closed forms at the edges of their domain, against 60-digit evaluations (mpmath) of the same formulas.

A review found the general-law variances evaluated as a difference of two nearly equal exponentials (E g² − (E g)²):
as y → x (trig) or x + y → 0 (positive, hyperbolic, OPRF at tiny norms) they returned −5·10⁻¹⁷ for 2·10⁻³³, or
values 10¹⁶ times too large; ORF's trig variance went negative; the hyperbolic variance overflowed in M(2z) where
it is a finite number; the float32 trig and GERF kernels returned 0 for representable values; the arc-cosine kernel
lost every digit near θ = π; and some out-of-domain arguments gave numbers instead of errors."""

import math

import mpmath as mp
import pytest
import torch

import kerneltheory.estimators as E
from kerneltheory import kernels, theory

mp.mp.dps = 60
M = 4


def t64(v):
    return torch.tensor(v, dtype=torch.float64)


def _sums(x, y):
    x, y = [mp.mpf(v) for v in x], [mp.mpf(v) for v in y]
    z2 = sum((a + b) ** 2 for a, b in zip(x, y, strict=True))
    t2 = sum((a - b) ** 2 for a, b in zip(x, y, strict=True))
    xy = sum(a * b for a, b in zip(x, y, strict=True))
    return z2, t2, xy, sum(a * a for a in x) + sum(b * b for b in y)


def exact_variance(name, x, y, m=M):
    """MATH.md §4 for N(0, I) frequencies: trig SM-weighted e^{‖x‖²+‖y‖²}(1 − e^{−‖τ‖²})²/(2m), positive
    SM²(e^{‖z‖²} − 1)/m, hyperbolic SM²(e^{‖z‖²} − 1)(1 − e^{−‖z‖²})/(2m)."""
    z2, t2, xy, nn = _sums(x, y)
    if name == "trig":
        return mp.exp(nn) * mp.expm1(-t2) ** 2 / (2 * m)
    if name == "positive":
        return mp.exp(2 * xy) * mp.expm1(z2) / m
    return -mp.expm1(-z2) / 2 * mp.exp(2 * xy) * mp.expm1(z2) / m


@pytest.mark.parametrize("name, x, y", [
    ("trig", [0.5, 0.25], [0.5 + 1e-8, 0.25]), ("trig", [0.5, 0.25], [0.5 + 1e-6, 0.25]),
    ("positive", [0.5, 0.25], [-0.5 - 1e-8, -0.25]), ("positive", [1e-8, 1e-8], [1e-8, 1e-8]),
    ("hyperbolic", [0.5, 0.25], [-0.5 - 1e-7, -0.25]), ("hyperbolic", [0.5, 0.25], [-0.5 - 1e-5, -0.25]),
])
def test_variances_keep_their_relative_accuracy_where_they_are_tiny(name, x, y):
    """The registered estimators' variances (the general-law path and its centred-Gaussian form) and the
    attention theory's key covariance at y' = y, to 1e-12 of the exact value (they were off by up to 2·10¹⁶)."""
    from kerneltheory.testing.attention_theory import key_covariance

    est = E.get(f"{name}/gaussian", dim=2, num_features=M)
    want = float(exact_variance(name, x, y))
    got = float(est.variance_pairs(t64([x]), t64([y]))[0])
    assert got > 0 and abs(got - want) <= 1e-12 * want, (got, want)
    cov = key_covariance(est, t64([x]), t64([y]))  # [nq, n, n]: the covariance of a key with itself
    assert abs(float(cov[0, 0, 0]) - want) <= 1e-12 * want, (float(cov[0, 0, 0]), want)


@pytest.mark.parametrize("component", ["trig", "positive", "hyperbolic"])
def test_the_general_law_path_agrees_with_the_gaussian_form_where_both_apply(component):
    """A one-component centred mixture is N(0, I) evaluated through the general-law formulas (ψ or log M): at
    moderate points they agree with the centred-Gaussian forms to rounding, so the stable forms moved no value
    there."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64) / 2
    y = torch.randn(6, 3, generator=g, dtype=torch.float64) / 2
    mixture = E.get(f"{component}/mixture", dim=3, num_features=M, means=torch.zeros(1, 3, dtype=torch.float64),
                    covs=torch.eye(3, dtype=torch.float64)[None], weights=torch.ones(1, dtype=torch.float64))
    gaussian = E.get(f"{component}/gaussian", dim=3, num_features=M)
    torch.testing.assert_close(mixture.variance_pairs(x, y), gaussian.variance_pairs(x, y), rtol=1e-10, atol=0)


def test_the_orf_trig_variance_stays_positive_and_exact_as_y_approaches_x():
    """ORF's iid part (1 − k²)²/(2m) rounded to 0 while the accurate pair term was negative: −6.25e-34 for 1.9e-33."""
    for d, m, gap in ((2, 2, 1e-8), (4, 6, 1e-6), (3, 3, 1e-3)):
        x = torch.zeros(d, dtype=torch.float64)
        y = x.clone()
        y[0] = gap
        got = float(theory.orf_trig_variance(x, y, m))
        z2 = mp.mpf(gap) ** 2
        pair = mp.hyp1f1(d, mp.mpf(d) / 2, -z2 / 2) - mp.exp(-z2)
        want = mp.expm1(-z2) ** 2 / (2 * m) + theory.orf_pair_fraction(m, d) * pair
        # the old value was negative (a relative error above 1); the pair term's series is accurate here to about
        # 2e-9 of the variance (measured at ζ = 1e-8), so 1e-6 separates the two with room on both sides
        assert got > 0 and abs(got - float(want)) <= 1e-6 * float(want), (d, m, got, float(want))


def test_the_hyperbolic_variance_is_finite_where_its_value_is():
    """M(2z) = e^{2‖z‖²} overflowed alone at x = y = 9.5 (float64) and 3.5 (float32), where the variance is finite."""
    for dtype, v in ((torch.float64, 9.5), (torch.float64, 10.0), (torch.float32, 3.5)):
        est = E.get("hyperbolic/gaussian", dim=1, num_features=M, dtype=dtype)
        p = torch.tensor([[v]], dtype=dtype)
        got = float(est.variance_pairs(p, p)[0])
        want = float(exact_variance("hyperbolic", [v], [v]))
        assert math.isfinite(got) and abs(got - want) <= 1e-5 * want, (dtype, v, got, want)


@pytest.mark.parametrize("name", ["trig/gaussian", "gerf/gaussian"])
def test_float32_kernels_do_not_underflow_to_zero_where_the_value_is_a_float32_number(name):
    """e^{(‖x‖²+‖y‖²)/2}·ψ(x − y) in two factors gave 0.0 for SM = e^{−81} at ‖x‖ = 9, y = −x, in float32."""
    kw = {"s": -1} if name.startswith("gerf") else {}
    est = E.get(name, dim=1, num_features=M, dtype=torch.float32, **kw)
    for v in (7.0, 8.0, 9.0):
        got = float(est.kernel_pairs(torch.tensor([[v]]), torch.tensor([[-v]]))[0])
        assert abs(got - math.exp(-v * v)) <= 1e-4 * math.exp(-v * v), (v, got)


def test_the_arc_cosine_kernel_is_accurate_near_antiparallel_inputs():
    """sin θ + (π − θ)cos θ ≈ (π − θ)³/3 from arccos of a cosine: 824× too large at π − θ = 10⁻⁶; 4.5e-26 at y = −x."""
    for delta in (1e-2, 1e-4, 1e-6):
        x = t64([[1.0, 0.0]])
        y = t64([[-math.cos(delta), math.sin(delta)]])
        d = mp.mpf(2) * mp.atan2(mp.sqrt((1 - mp.cos(delta)) ** 2 + mp.sin(delta) ** 2),
                                 mp.sqrt((1 + mp.cos(delta)) ** 2 + mp.sin(delta) ** 2))
        want = float((mp.sin(d) - d * mp.cos(d)) / (2 * mp.pi))
        got = float(kernels.arccos1(x, y)[0, 0])
        assert abs(got - want) <= 1e-12 * want, (delta, got, want)
    x = t64([[0.4, -0.1]])
    assert float(kernels.arccos1(x, -x)[0, 0]) == 0.0
    # opposite up to the rounding of y = −c·x and of the normalisation: 0, not ~ε³ (a target below every rounding
    # floor made a random-seed run refuse the claim matrix's anti-collinear family of relu/orthogonal)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    assert bool((torch.diagonal(kernels.arccos1(x, -0.37 * x)) == 0).all())


def test_out_of_domain_arguments_of_the_closed_forms_are_errors_naming_them():
    x = t64([0.1, 0.2])
    for dim in (5, -3):
        with pytest.raises(ValueError, match="dim"):
            theory.gerf_second_moment_log(x, x, -0.1, 1, -0.5, dim)
    with pytest.raises(ValueError, match="k must be a Gaussian kernel value"):
        theory.gaussian_kernel_trig_variance(t64(2.0), 3)
    with pytest.raises(ValueError, match="psi_tau must hold values"):
        theory.trig_paired_variance(t64(2.0), t64(1.0), 3)
    with pytest.raises(ValueError, match="x and y must share a dtype"):
        E.get("positive/gaussian", dim=2, num_features=3).kernel(t64([[0.1, 0.2]]), torch.tensor([[0.3, -0.1]]))
    with pytest.raises(ValueError, match="v must be finite"):
        theory.sderf_cross_moment_log(t64([0.1]), t64([0.1]), t64([0.1]), t64([[math.nan]]), t64([1.0]))


def test_the_stable_forms_keep_finite_gradients_and_refuse_what_overflows():
    """Review findings on the stable forms: log(0) at δ = 0 in a branch of torch.where gave NaN gradients (the
    variance at z = 0, at y = x); the centred-Gaussian covariances returned inf where the general ones raised; a
    Python float k became a float32 tensor (42 % off at k = 0.9999999)."""
    from kerneltheory._validation import NotRepresentableError
    from kerneltheory.testing.attention_theory import key_covariance

    for name, y_of in (("positive/gaussian", lambda x: -x), ("trig/gaussian", lambda x: x)):
        x = torch.tensor([[0.3, 0.1]], dtype=torch.float64, requires_grad=True)
        E.get(name, 2, 4).variance_pairs(x, y_of(x.detach())).sum().backward()
        assert bool(torch.isfinite(x.grad).all()), (name, x.grad)
    x = torch.tensor([[0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    E.get("positive/gaussian", 2, 4).variance_pairs(x, x.detach()).sum().backward()
    assert bool((x.grad == 0).all())  # the variance's minimum, 0 at z = 0
    for name, v in (("trig/gaussian", 20.0), ("hyperbolic/gaussian", 30.0)):
        est = E.get(name, 1, 4)
        with pytest.raises(NotRepresentableError):
            key_covariance(est, t64([[v]]), t64([[v + 0.5], [v - 0.3]]))
    k = 0.9999999
    assert abs(theory.gaussian_kernel_trig_variance(k, 3) - (1 - k * k) ** 2 / 6) <= 1e-9 * (1 - k * k) ** 2 / 6
