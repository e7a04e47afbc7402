r"""Simplex random features (SimRF) and their weight-dependent variant SimRF+ (Reid, Choromanski,
Likhosherstov & Weller 2023, "Simplex Random Features", ICML, §3 eq. (9) and §4 eq. (17)).

SimRF. Each block of d rows is ω_i = s_i · R u_i, i = 1..d, where

* u_1, …, u_d are the unit vectors to the vertices of a regular simplex centred at the origin,
  u_iᵀu_j = −1/(d − 1) for i ≠ j (here u_i = (e_i − 1/d)/‖e_i − 1/d‖, a simplex in the hyperplane ⊥ 𝟙);
* R is Haar-random on O(d) (QR of a Gaussian matrix with the signs of diag(R) folded in, as for ORF);
* s_i ~ χ_d independent of each other and of R.

Blocks are independent; the first m rows of ⌈m/d⌉ blocks are kept. Since R u_i is uniform on the sphere and
independent of s_i, every row is exactly N(0, I) (proofs/simplex.md, item 1): ψ, M and so every target are
those of the Gaussian reference, and estimators linear in single-row terms are unbiased.

SimRF+. The directions depend on the block's norms: starting from the simplex, each direction is replaced in turn
by the unit vector opposite to the resultant of the others, u_i ← −r_i/‖r_i‖ with r_i = Σ_{j≠i} s_j u_j, for
``sweeps`` passes (the paper's eq. (17); coordinate descent on Σ_{i≠j} ω_iᵀω_j = ‖Σ_i ω_i‖² − Σ_i s_i²). The
norms are kept and the block is then rotated by an independent Haar R, so each row is still exactly N(0, I)
(proofs/simplex.md, item 2): SimRF+ stays unbiased. (The paper's published code draws one set of norms shared by
all blocks; here each block draws its own, as the paper's text describes; both keep the N(0, I) marginals.)

For positive features, Var(SimRF) ≤ Var(ORF) at every pair (x, y) (proofs/simplex.md, item 3).

Example:
    >>> import torch
    >>> from kerneltheory.spectral import Simplex
    >>> w = Simplex(4).sample(4, torch.Generator().manual_seed(0))
    >>> bool(torch.allclose((w / w.norm(dim=-1, keepdim=True)).sum(0), torch.zeros(4, dtype=w.dtype), atol=1e-12))
    True
"""

from __future__ import annotations

import torch

from .._validation import check_int
from .gaussian import GaussianApproximation


def simplex_directions(dim: int, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """``[d, d]``: row i is u_i = (e_i − 𝟙/d)/‖e_i − 𝟙/d‖, unit vectors with u_iᵀu_j = −1/(d − 1) (i ≠ j).

    For d = 1 the one "vertex" is u_1 = e_1 (a single direction; SimRF is then ORF)."""
    d = check_int(dim, "dim", minimum=1)
    if d == 1:
        return torch.ones(1, 1, dtype=dtype, device=device)
    u = torch.eye(d, dtype=dtype, device=device) - 1.0 / d
    return u / u.norm(dim=-1, keepdim=True)


def haar_orthogonal(g: torch.Tensor) -> torch.Tensor:
    """Haar-distributed orthogonal matrices from Gaussian ones ``[..., d, d]`` (QR, signs of diag R folded in)."""
    q, r = torch.linalg.qr(g)
    signs = torch.where(torch.diagonal(r, dim1=-2, dim2=-1) >= 0, 1.0, -1.0).to(q.dtype)
    return q * signs.unsqueeze(-2)


class Simplex(GaussianApproximation):
    """SimRF: per block of d rows, χ_d norms times a Haar-rotated regular simplex of directions."""

    name = "simplex"
    row_marginal = "exact"
    rows_marginally_gaussian = True
    iid_rows = False
    independent_blocks = True
    proof = "proofs/simplex.md"
    claim_notes = {
        "variance": "no closed form; for positive features Var(SimRF) ≤ Var(ORF) at every pair "
        "(proofs/simplex.md, item 3)",
    }

    def _directions(self, norms: torch.Tensor) -> torch.Tensor:
        """Unit directions ``[r, blocks, d, d]`` of each block before the rotation (the simplex for SimRF)."""
        u = simplex_directions(self.dim, dtype=self.dtype, device=self.device)
        return u.expand(*norms.shape, self.dim)

    def _sample(self, m, generator, r):
        d = self.dim
        blocks = -(-m // d)
        rot = haar_orthogonal(self._normal((r, blocks, d, d), generator))
        norms = torch.linalg.vector_norm(self._normal((r, blocks, d, d), generator), dim=-1)  # χ_d
        u = self._directions(norms)
        w = (u @ rot.transpose(-1, -2)) * (self.std * norms).unsqueeze(-1)  # row i: s_i (R u_i)ᵀ
        return w.reshape(r, blocks * d, d)[:, :m]


class SimplexPlus(Simplex):
    """SimRF+: the simplex directions adjusted to the block's norms (eq. (17)), then Haar-rotated."""

    name = "simplex_plus"
    claim_notes = {
        "unbiased": "directions depend on the block's norms, but the Haar rotation keeps every row exactly N(0, I) "
        "(proofs/simplex.md, item 2)",
        "variance": "no closed form; the paper's asymptotic optimality is not proved here",
    }

    def __init__(self, dim: int, *, std: float = 1.0, sweeps: int = 5, dtype=torch.float64, device=None):
        super().__init__(dim, std=std, dtype=dtype, device=device)
        self.sweeps = check_int(sweeps, "sweeps", minimum=0)

    def _directions(self, norms):
        u = super()._directions(norms).clone()
        for _ in range(self.sweeps):
            for i in range(self.dim):
                w = u * norms.unsqueeze(-1)
                resultant = w.sum(-2) - w[..., i, :]  # r_i = Σ_{j≠i} s_j u_j
                length = resultant.norm(dim=-1, keepdim=True)
                # r_i = 0: every direction is optimal for u_i, keep the current one
                u[..., i, :] = torch.where(length > 0, -resultant / torch.where(length > 0, length, 1.0), u[..., i, :])
        return u

    def extra_repr(self) -> str:
        return f"dim={self.dim}, std={self.std}, sweeps={self.sweeps}"
