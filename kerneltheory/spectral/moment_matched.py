r"""Moment-matched Gaussian frequencies: iid rows, then centred and whitened to exact first two moments.

Construction (moment matching, a classical Monte Carlo variance-reduction device: Glasserman 2004,
"Monte Carlo Methods in Financial Engineering", §4.5): draw E ∈ R^{m×d} with iid N(0, 1) entries, centre
and whiten with the inverse symmetric square root of the sample covariance (divisor m),

.. math::
    \bar e = \tfrac1m \textstyle\sum_i e_i, \quad
    C = \tfrac1m (E - \mathbf 1\bar e^\top)^\top (E - \mathbf 1\bar e^\top),
    \quad W = \sigma\,(E - \mathbf 1\bar e^\top)\, C^{-1/2},

so that (1/m) Σ_i ω_i = 0 and (1/m) Σ_i ω_i ω_iᵀ = σ² I hold exactly (to rounding). C is invertible with
probability one iff m > d (the centred matrix has rank ≤ m − 1), which the sampler requires.

Row law (proofs/moment_matched.md): the rows are exchangeable and E[ω_i ω_iᵀ] = σ² I exactly, but a row is not
Gaussian (e.g. ‖ω_i‖² ≤ mσ²: a leverage is at most 1); its law converges to N(0, σ² I) as m → ∞:
``row_marginal = "asymptotic"``. The whitening is computed in float64 and cast to the law's dtype.

Example:
    >>> import torch
    >>> from kerneltheory.spectral import MomentMatched
    >>> w = MomentMatched(2).sample(10, torch.Generator().manual_seed(0))
    >>> bool(w.mean(0).abs().max() < 1e-12)
    True
"""

from __future__ import annotations

import torch

from .._normal import standard_normal
from .gaussian import GaussianApproximation


class MomentMatched(GaussianApproximation):
    """iid N(0, I) rows, centred and whitened (sample mean 0, sample covariance I), times ``std``."""

    name = "moment_matched"
    row_marginal = "asymptotic"
    rows_marginally_gaussian = False
    iid_rows = False
    proof = "proofs/moment_matched.md"

    def __init__(self, dim: int, *, std: float = 1.0, dtype=torch.float64, device=None):
        super().__init__(dim, std=std, dtype=dtype, device=device)

    def _sample(self, m, generator, r):
        if m <= self.dim:
            raise ValueError(
                f"num_features must be > dim = {self.dim} for moment matching (the sample covariance of "
                f"m <= d centred rows is singular), got {m}"
            )
        e = standard_normal((r, m, self.dim), generator).to(self.device)
        e = e - e.mean(dim=-2, keepdim=True)
        cov = e.transpose(-1, -2) @ e / m
        evals, evecs = torch.linalg.eigh(cov)
        inv_sqrt = (evecs * evals.rsqrt().unsqueeze(-2)) @ evecs.transpose(-1, -2)
        return (self.std * (e @ inv_sqrt)).to(self.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, std={self.std}"
