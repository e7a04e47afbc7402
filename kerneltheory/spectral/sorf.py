r"""Structured orthogonal random features (SORF): three Hadamard–Rademacher products per block.

Construction (Yu et al. 2016, "Orthogonal Random Features", §4, eq. (4)): with d' the least power of two
≥ d, H the normalised d'×d' Walsh–Hadamard matrix and D₁, D₂, D₃ independent Rademacher diagonals,

.. math::
    W_{\text{block}} = \sqrt{d'}\; (H D_1)(H D_2)(H D_3) \in \mathbb{R}^{d' \times d'} .

Inputs are zero-padded to d', so the frequencies are the first d columns of each block; ⌈m/d'⌉ independent
blocks are stacked, the first m rows kept, and everything is multiplied by ``std``.

Exact algebra (proofs/structured_bias.md): each factor H Dᵢ is orthogonal, so W_block/√d' is orthogonal: its
rows (and columns) are orthogonal with norm exactly √d'·std. After keeping the first d columns the *columns*
of a block stay orthogonal, W_bᵀ W_b = d'·std²·I_d; the rows are orthogonal with norm √d·std only when d = d'.
Every entry of one block is a finite sum of ±1/d' terms, so a row is never Gaussian: the estimators built on
SORF target the Gaussian reference but carry a bias (at most O(1/√d), measured ∝ 1/d) that does not vanish
with m (Yu et al. 2016, §4; proofs/structured_bias.md; ``row_marginal = "no"``). The matrix is formed with the
fast transform, O(d'² log d') per block.

Example:
    >>> import torch
    >>> from kerneltheory.spectral import SORF
    >>> SORF(5).sample(10, torch.Generator().manual_seed(0)).shape
    torch.Size([10, 5])
"""

from __future__ import annotations

import math

import torch

from .gaussian import GaussianApproximation
from .hadamard import fwht, next_power_of_two


def rademacher(shape, generator: torch.Generator) -> torch.Tensor:
    """±1 entries, independent and fair, drawn on the CPU from ``generator`` (float64)."""
    return torch.randint(0, 2, shape, generator=generator).to(torch.float64) * 2.0 - 1.0


class SORF(GaussianApproximation):
    """SORF: √d'·(H D₁)(H D₂)(H D₃) per d'×d' block, first d columns, ⌈m/d'⌉ blocks, times ``std``."""

    name = "sorf"
    row_marginal = "no"
    rows_marginally_gaussian = False
    iid_rows = False
    independent_blocks = True
    proof = "proofs/structured_bias.md"

    def __init__(self, dim: int, *, std: float = 1.0, dtype=torch.float64, device=None):
        super().__init__(dim, std=std, dtype=dtype, device=device)
        self.padded_dim = next_power_of_two(self.dim)

    def _sample(self, m, generator, r):
        dp = self.padded_dim
        blocks = -(-m // dp)
        diags = rademacher((3, r, blocks, 1, dp), generator).to(self.device, self.dtype)
        # Row-vector form: start from I and right-multiply by H D₁, H D₂, H D₃ (fwht(y) = y Hᵀ = y H).
        y = torch.eye(dp, dtype=self.dtype, device=self.device).expand(r, blocks, dp, dp)
        for k in range(3):
            y = fwht(y, normalized=True) * diags[k]
        w = (self.std * math.sqrt(dp)) * y[..., : self.dim]
        return w.reshape(r, blocks * dp, self.dim)[:, :m]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, padded_dim={self.padded_dim}, std={self.std}"
