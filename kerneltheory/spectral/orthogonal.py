r"""Orthogonal random features (ORF): blocks of Haar-random orthogonal rows with χ_d row norms.

Construction (Yu et al. 2016, "Orthogonal Random Features", §3; Choromanski et al. 2021, "Rethinking
Attention with Performers", §2.4): for each of the ⌈m/d⌉ blocks draw a d×d Gaussian matrix G, factor
G = QR, and fold the signs of diag(R) into Q,

.. math::
    Q \leftarrow Q\,\operatorname{diag}(\operatorname{sign} R_{11}, \dots, \operatorname{sign} R_{dd}),

which makes Q exactly Haar-distributed on O(d) (Mezzadri 2007, "How to generate random matrices from the
classical compact groups"). Each row q_i of Q is uniform on the sphere; scaling it by an independent
s_i ~ χ_d (the norm of an independent N(0, I_d) vector) gives ω_i = σ s_i q_i ~ N(0, σ² I_d) exactly
(a Gaussian vector is its norm times an independent uniform direction). Rows within a block are orthogonal,
hence dependent; blocks are independent. The blocks are stacked and the first m rows kept.

So every row is marginally the reference Gaussian N(0, std² I), ψ and M are the Gaussian ones, and every
estimator linear in single-row terms is unbiased (proofs/orthogonal_rows.md). With ``scaling="fixed"``
(every row norm √d·std, a common variant) the rows are uniform on a sphere instead: not Gaussian, and the
estimators of the Gaussian kernels are biased (``row_marginal = "no"``).

Example:
    >>> import torch
    >>> from kerneltheory.spectral import Orthogonal
    >>> w = Orthogonal(4).sample(6, torch.Generator().manual_seed(0), batch=2)
    >>> w.shape
    torch.Size([2, 6, 4])
"""

from __future__ import annotations

import math

import torch

from .gaussian import GaussianApproximation


class Orthogonal(GaussianApproximation):
    """ORF: ⌈m/d⌉ independent Haar-orthogonal blocks, rows scaled by χ_d norms (or √d), times ``std``."""

    name = "orthogonal"
    device_generator = True
    row_marginal = "exact"
    rows_marginally_gaussian = True
    iid_rows = False
    independent_blocks = True
    independent_norms = True  # with χ_d scaling; __init__ clears it for scaling="fixed"
    proof = "proofs/orthogonal_rows.md"

    def __init__(self, dim: int, *, std: float = 1.0, scaling: str = "chi", dtype=torch.float64, device=None):
        super().__init__(dim, std=std, dtype=dtype, device=device)
        if scaling not in ("chi", "fixed"):
            raise ValueError(f"scaling must be 'chi' or 'fixed', got {scaling!r}")
        self.scaling = scaling
        if scaling == "fixed":
            # Rows uniform on the sphere of radius √d·std: not the Gaussian reference's law.
            self.row_marginal = "no"
            self.rows_marginally_gaussian = False
            self.independent_norms = False  # every norm is √d·std

    def _sample(self, m, generator, r):
        d = self.dim
        blocks = -(-m // d)
        g = self._normal((r, blocks, d, d), generator)
        q, rr = torch.linalg.qr(g)
        signs = torch.where(torch.diagonal(rr, dim1=-2, dim2=-1) >= 0, 1.0, -1.0).to(q.dtype)
        if self.scaling == "chi":
            norms = torch.linalg.vector_norm(self._normal((r, blocks, d, d), generator), dim=-1)
        else:
            norms = torch.full((r, blocks, d), math.sqrt(d), dtype=self.dtype, device=self.device)
        # Q·diag(sign diag R) (column j times sign(R_jj)), then row i times std·s_i: the two products of the
        # definition (the same two roundings per entry), the second in place. With several blocks the first is
        # written row-major (LAPACK's Q is column-major), so the reshape below is a view instead of a copy; with
        # one block it keeps Q's layout, which the reshape keeps too: W's layout (and so the products that use
        # it) is the one of q * signs * (std·norms)
        out = torch.empty_like(q) if blocks == 1 else torch.empty(g.shape, dtype=q.dtype, device=q.device)
        w = torch.mul(q, signs.unsqueeze(-2), out=out)
        w.mul_((self.std * norms).unsqueeze(-1))  # the law has no parameters: nothing to differentiate
        return w.reshape(r, blocks * d, d)[:, :m]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, std={self.std}, scaling={self.scaling!r}"
