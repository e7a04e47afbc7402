r"""Integer-valued frequency laws of the DIRF components (PoisRF, GeomRF): Poisson and geometric coordinates.

These are the laws of ω ∈ N^d only (DIRF, discretely-induced random features: Likhosherstov et al. 2022,
"Chefs' Random Tables: Non-Trigonometric Random Features"); the feature maps built on them live in
``kerneltheory.features``.
Coordinates are iid, rows are iid (``row_marginal = "exact"``, ``reference = self``).

Poisson(λ) per coordinate, P(ω_l = k) = e^{−λ} λ^k / k!:

.. math::
    M(z) = \prod_l \exp(\lambda(e^{z_l} - 1)), \qquad
    \operatorname{Re}\psi(\tau) = e^{\lambda\sum_l(\cos\tau_l - 1)}
        \cos\big(\lambda \textstyle\sum_l \sin\tau_l\big).

Geometric(p) per coordinate, P(ω_l = k) = p(1 − p)^k, k ≥ 0 (sampled by inversion, ⌊log U / log(1 − p)⌋):

.. math::
    M(z) = \prod_l \frac{p}{1 - (1-p)e^{z_l}} \quad ((1-p)e^{z_l} < 1), \qquad
    \psi(\tau) = \prod_l \frac{p}{1 - (1-p)e^{i\tau_l}} .

These 1-D laws are not symmetric, so ψ is complex and Re ψ is *not* the product of the real parts: both
characteristic functions are computed as complex products and their real part taken (proofs/dirf.md).

Example:
    >>> import torch
    >>> from kerneltheory.spectral import PoissonLaw
    >>> PoissonLaw(3, rate=2.0).sample(4, torch.Generator().manual_seed(0)).shape
    torch.Size([4, 3])
"""

from __future__ import annotations

import math

import torch

from .._validation import check_real
from .base import SpectralLaw


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


class PoissonLaw(SpectralLaw):
    """ω_l ~ Poisson(rate) iid over coordinates and rows."""

    name = "poisson"
    device_generator = True
    row_marginal = "exact"
    rows_marginally_gaussian = False
    iid_rows = True
    proof = "proofs/dirf.md"

    def __init__(self, dim: int, *, rate: float = 1.0, dtype=torch.float64, device=None):
        super().__init__(dim, dtype=dtype, device=device)
        self.rate = check_real(rate, "rate", minimum=0.0, strict_min=True)

    @property
    def reference(self) -> PoissonLaw:
        return self

    def _sample(self, m, generator, r):
        rates = torch.full((r, m, self.dim), self.rate, dtype=torch.float64, device=generator.device)
        return torch.poisson(rates, generator=generator).to(self.device, self.dtype)

    def log_mgf(self, z):
        z = self._check_arg(z, "z").to(self.dtype)
        return self.rate * torch.expm1(z).sum(-1)

    def mgf(self, z):
        return torch.exp(self.log_mgf(z))

    def char_fn(self, tau):
        tau = self._check_arg(tau, "tau").to(self.dtype)
        return torch.exp(self.rate * (torch.cos(tau) - 1.0).sum(-1)) * torch.cos(
            self.rate * torch.sin(tau).sum(-1)
        )

    def extra_repr(self) -> str:
        return f"dim={self.dim}, rate={self.rate}"


class GeometricLaw(SpectralLaw):
    """ω_l ~ Geometric(p) on {0, 1, 2, ...}, P(k) = p(1 − p)^k, iid over coordinates and rows."""

    name = "geometric"
    device_generator = True
    row_marginal = "exact"
    rows_marginally_gaussian = False
    iid_rows = True
    proof = "proofs/dirf.md"

    def __init__(self, dim: int, *, p: float = 0.5, dtype=torch.float64, device=None):
        super().__init__(dim, dtype=dtype, device=device)
        self.p = check_real(p, "p", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)

    @property
    def reference(self) -> GeometricLaw:
        return self

    def _sample(self, m, generator, r):
        u = 1.0 - torch.rand((r, m, self.dim), generator=generator, dtype=torch.float64, device=generator.device)
        k = torch.floor(torch.log(u) / math.log1p(-self.p))  # P(K ≥ k) = P(U ≤ (1−p)^k) = (1−p)^k
        return k.to(self.device, self.dtype)

    def log_mgf(self, z):
        z = self._check_arg(z, "z").to(self.dtype)
        log_ratio = math.log1p(-self.p) + z  # log((1−p) e^{z_l})
        if bool((log_ratio >= 0).any()):
            bound = -math.log1p(-self.p)
            raise ValueError(
                f"z must satisfy z_l < -log(1 - p) = {bound:.6g} in every coordinate (the MGF diverges)"
            )
        return (math.log(self.p) - torch.log(-torch.expm1(log_ratio))).sum(-1)

    def mgf(self, z):
        return torch.exp(self.log_mgf(z))

    def char_fn(self, tau):
        tau = self._check_arg(tau, "tau").to(self.dtype)
        ratio = (1.0 - self.p) * torch.exp(1j * tau.to(_complex(self.dtype)))
        return (self.p / (1.0 - ratio)).prod(-1).real

    def extra_repr(self) -> str:
        return f"dim={self.dim}, p={self.p}"
