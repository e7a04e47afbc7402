"""Exact kernels: closed forms, identities, batch dimensions, dtypes and input validation."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from kerneltheory import kernels
from kerneltheory.spectral import Gaussian


def _pts(gen, *shape, dtype=torch.float64):
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_and_gaussian_identity(kt_generator, dtype):
    """SM(x, y) = exp(‖x‖²/2) K_1(x, y) exp(‖y‖²/2) (MATH.md §1)."""
    x, y = _pts(kt_generator, 2, 3, 5, 4, dtype=dtype), _pts(kt_generator, 2, 3, 6, 4, dtype=dtype)
    sm = kernels.softmax(x, y)
    assert sm.shape == (2, 3, 5, 6) and sm.dtype == dtype
    rhs = (
        torch.exp((x * x).sum(-1, keepdim=True) / 2)
        * kernels.gaussian(x, y)
        * torch.exp((y * y).sum(-1)[..., None, :] / 2)
    )
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(sm, rhs, rtol=tol, atol=0)


def test_gaussian_bandwidth_matches_definition(kt_generator):
    x, y = _pts(kt_generator, 4, 3), _pts(kt_generator, 5, 3)
    sigma = 0.7
    expected = torch.exp(-(torch.cdist(x, y) ** 2) / (2 * sigma**2))
    torch.testing.assert_close(kernels.gaussian(x, y, sigma=sigma), expected, rtol=1e-12, atol=1e-14)


def test_spectral_mixture_matches_numerical_integration():
    """k(τ) = ∫ cos(ωτ) p(ω) dω for the symmetrised mixture density, d = 1 (quad, error estimate ≤ 1e-10)."""
    w, mu, var = np.array([0.3, 0.7]), np.array([0.5, 2.0]), np.array([0.4, 1.5])

    def density(om):
        comps = [
            0.5
            * (np.exp(-((om - m) ** 2) / (2 * v)) + np.exp(-((om + m) ** 2) / (2 * v)))
            / math.sqrt(2 * math.pi * v)
            for m, v in zip(mu, var, strict=True)
        ]
        return float(np.dot(w, comps))

    x = torch.tensor([[0.0], [0.3], [1.1]], dtype=torch.float64)
    y = torch.tensor([[0.0]], dtype=torch.float64)
    got = kernels.spectral_mixture(
        x, y, torch.tensor(w), torch.tensor(mu)[:, None], torch.tensor(var)[:, None, None]
    )
    for i, t in enumerate([0.0, 0.3, 1.1]):
        val, err = integrate.quad(
            lambda om, t=t: math.cos(om * t) * density(om), -40, 40, epsabs=1e-13, limit=400
        )
        assert err < 1e-10
        assert abs(float(got[i, 0]) - val) <= 10 * err + 1e-12


def test_arccos1_matches_numerical_integration():
    """E[relu(ωᵀx) relu(ωᵀy)], ω ~ N(0, I₂). In polar coordinates the radial integral is
    ∫₀^∞ r³ e^{−r²/2} dr / (2π) = 1/π, leaving (1/π) ∫₀^{2π} relu(uᵀx) relu(uᵀy) dφ, integrated by quad with
    the kinks (uᵀx = 0, uᵀy = 0) as breakpoints; tolerance from quad's error estimate."""
    x = torch.tensor([[1.0, 0.0], [0.3, -2.0]], dtype=torch.float64)
    y = torch.tensor([[math.cos(1.0), math.sin(1.0)], [-1.0, 0.5]], dtype=torch.float64)
    got = kernels.arccos1(x, y)
    for i in range(2):
        for j in range(2):
            a, b = x[i].numpy(), y[j].numpy()

            def integrand(phi, a=a, b=b):
                u = np.array([math.cos(phi), math.sin(phi)])
                return max(u @ a, 0.0) * max(u @ b, 0.0) / math.pi

            kinks = sorted(
                (math.atan2(v[1], v[0]) + s) % (2 * math.pi)
                for v in (a, b)
                for s in (math.pi / 2, -math.pi / 2)
            )
            val, err = integrate.quad(integrand, 0, 2 * math.pi, points=kinks, epsabs=1e-13, epsrel=1e-13)
            assert err < 1e-10
            assert abs(float(got[i, j]) - val) <= 10 * err + 1e-13


def test_arccos1_zero_vector_is_zero():
    x = torch.zeros(1, 3, dtype=torch.float64)
    y = torch.ones(2, 3, dtype=torch.float64)
    assert torch.equal(kernels.arccos1(x, y), torch.zeros(1, 2, dtype=torch.float64))


def test_positive_feature_kernel_is_softmax_for_standard_gaussian(kt_generator):
    x, y = _pts(kt_generator, 4, 3), _pts(kt_generator, 5, 3)
    law = Gaussian(3)
    torch.testing.assert_close(
        kernels.positive_feature_kernel(x, y, law), kernels.softmax(x, y), rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        kernels.positive_feature_kernel(x, y, law, h="gaussian"), kernels.gaussian(x, y), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize(
    "x, y, match",
    [
        (torch.zeros(3), torch.zeros(2, 3), "x must have shape"),
        (torch.zeros(2, 3), torch.zeros(2, 4), "share the last dimension"),
        (torch.tensor([[float("nan"), 0.0]]), torch.zeros(1, 2), "NaN"),
        (torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, 3), "dtype"),
    ],
)
def test_bad_input_raises(x, y, match):
    with pytest.raises(ValueError, match=match):
        kernels.softmax(x, y)


def test_bad_sigma_and_unknown_kernel():
    x = torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma"):
        kernels.gaussian(x, x, sigma=0.0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        kernels.get_kernel("laplace")
