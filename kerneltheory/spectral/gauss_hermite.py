r"""Subsampled Gauss–Hermite grid: each coordinate drawn from the nodes of an n-point Gauss–Hermite rule.

Construction (Dao, De Sa & Ré 2017, "Gaussian Quadrature for Kernel Features"): with (x_k, w_k), k = 1..n,
the physicists' Gauss–Hermite rule (∫ f(x) e^{−x²} dx ≈ Σ_k w_k f(x_k)), each coordinate of each row is drawn
independently,

.. math::
    P(\omega_l = \sigma\sqrt2\, x_k) = p_k = w_k/\sqrt\pi ,

i.e. from the n-point rule for N(0, σ²), which integrates polynomials of degree ≤ 2n − 1 exactly.
Rows are iid.

Closed forms of this discrete law itself (proofs/gauss_hermite.md), :meth:`exact_char_fn` and
:meth:`exact_mgf` (also returned by :meth:`char_fn` and :meth:`mgf`):

.. math::
    \operatorname{Re}\psi(\tau) = \prod_{l=1}^d \sum_k p_k \cos(\sigma\sqrt2\,x_k\tau_l), \qquad
    M(z) = \prod_{l=1}^d \sum_k p_k\, e^{\sigma\sqrt2\,x_k z_l}.

The product of real parts is right here only because each 1-D law is symmetric (the nodes are ±-paired with
equal weights), so each 1-D ψ is real. The target is still the Gaussian :attr:`reference` N(0, σ² I): the law
matches its moments up to degree 2n − 1 per coordinate, so M(z) − M_Gauss(z) = O(|z|^{2n}) as z → 0, but the
bias does not vanish with m (``row_marginal = "no"``).

Example:
    >>> import torch
    >>> from kerneltheory.spectral import GaussHermite
    >>> GaussHermite(3, nodes=4).sample(5, torch.Generator().manual_seed(0)).shape
    torch.Size([5, 3])
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.polynomial.hermite import hermgauss

from .._validation import check_int
from .gaussian import GaussianApproximation


class GaussHermite(GaussianApproximation):
    """Coordinates iid from the n-point Gauss–Hermite rule for N(0, std²) (``nodes = n``)."""

    name = "gauss_hermite"
    row_marginal = "no"
    rows_marginally_gaussian = False
    iid_rows = True
    proof = "proofs/gauss_hermite.md"

    def __init__(self, dim: int, *, std: float = 1.0, nodes: int = 8, dtype=torch.float64, device=None):
        super().__init__(dim, std=std, dtype=dtype, device=device)
        self.nodes = check_int(nodes, "nodes", minimum=1)
        x, w = hermgauss(self.nodes)
        p = w / math.sqrt(math.pi)
        self.register_buffer(
            "values", torch.as_tensor(self.std * math.sqrt(2.0) * x, dtype=self.dtype, device=self.device)
        )
        self.register_buffer("probs", torch.as_tensor(p, dtype=self.dtype, device=self.device))
        # Inverse-CDF table on the CPU in float64 (the uniforms come from the CPU generator); the last
        # boundary is dropped so every u ∈ [0, 1) maps to an index in 0..n−1.
        self._cdf_inner = torch.as_tensor(np.cumsum(p)[:-1], dtype=torch.float64)

    def _sample(self, m, generator, r):
        u = torch.rand((r, m, self.dim), generator=generator, dtype=torch.float64)
        idx = torch.searchsorted(self._cdf_inner, u, right=True)
        return self.values[idx.to(self.values.device)]

    def exact_char_fn(self, tau: torch.Tensor) -> torch.Tensor:
        """Re ψ(τ) = Π_l Σ_k p_k cos(σ√2 x_k τ_l) of this discrete law, for ``tau`` ``[..., d]``."""
        tau = self._check_arg(tau, "tau").to(self.dtype)
        return (torch.cos(tau.unsqueeze(-1) * self.values) @ self.probs).prod(-1)

    def exact_log_mgf(self, z: torch.Tensor) -> torch.Tensor:
        """log M(z) = Σ_l log Σ_k p_k exp(σ√2 x_k z_l), computed with log-sum-exp."""
        z = self._check_arg(z, "z").to(self.dtype)
        return torch.logsumexp(torch.log(self.probs) + z.unsqueeze(-1) * self.values, dim=-1).sum(-1)

    def exact_mgf(self, z: torch.Tensor) -> torch.Tensor:
        """M(z) = Π_l Σ_k p_k exp(σ√2 x_k z_l) of this discrete law, for ``z`` ``[..., d]``."""
        return torch.exp(self.exact_log_mgf(z))

    def char_fn(self, tau):
        return self.exact_char_fn(tau)

    def mgf(self, z):
        return self.exact_mgf(z)

    def log_mgf(self, z):
        return self.exact_log_mgf(z)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, std={self.std}, nodes={self.nodes}"
