r"""Fastfood: Gaussian rows in O(m log d) time and O(m) memory per input.

Construction (Le, Sarlós & Smola 2013, "Fastfood — Approximating Kernel Expansions in Loglinear Time",
§3): with d' the least power of two ≥ d, H the *unnormalised* d'×d' Walsh–Hadamard matrix, and per
d'×d' block

.. math::
    V = \tfrac{1}{\sqrt{d'}}\, S H G \Pi H B,

B a Rademacher diagonal, Π a uniform random permutation ((Πv)_k = v_{perm[k]}), G = diag(g), g ~ N(0, I_{d'}),
S = diag(s_i/‖g‖₂) with s_i ~ χ_{d'} independent. Inputs are zero-padded to d', so the frequency matrix is
the first d columns of V; ⌈m/d'⌉ independent blocks are stacked, the first m rows kept, times ``std``.

Row law (proofs/fastfood_rows.md): row i of H G Π H B is Σ_k H_ik g_k h_{perm[k]} B with h_j the rows of H;
the signs H_ik and the permutation leave the iid N(0, 1) vector g invariant in law, and the h_j/√d' are
orthonormal, so the row is ‖g‖·u·√d' with u uniform on the sphere. Hence every row of V is
s_i·u ~ N(0, I_{d'}) exactly, and its first d coordinates are N(0, I_d): ``row_marginal = "exact"``, ψ and
M are the Gaussian reference's. Rows of one block share g, Π, B and are dependent (``iid_rows = False``).

:meth:`Fastfood.sample_structured` returns the diagonals and permutation; :meth:`Fastfood.project` computes
x Wᵀ from them with two fast transforms, O(m log d') per input, never forming W. :meth:`Fastfood.sample`
forms W (projecting the d unit vectors).

Example:
    >>> import torch
    >>> from kerneltheory.spectral import Fastfood
    >>> law = Fastfood(3)
    >>> params = law.sample_structured(8, torch.Generator().manual_seed(0))
    >>> law.project(torch.ones(5, 3, dtype=torch.float64), params).shape
    torch.Size([5, 8])
"""

from __future__ import annotations

import math

import torch

from .._normal import standard_normal
from .._validation import check_generator, check_int, check_points
from .gaussian import GaussianApproximation
from .hadamard import fwht, next_power_of_two
from .sorf import rademacher


def check_draw_args(num_features, generator, batch) -> tuple[int, int]:
    """Validate the arguments of a draw as :meth:`SpectralLaw.sample` does; returns (m, number of draws)."""
    m = check_int(num_features, "num_features", minimum=1)
    check_generator(generator)
    r = 1 if batch is None else check_int(batch, "batch", minimum=1)
    return m, r


def draw_fastfood_diagonals(shape, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """B, G, S/std and perm of shape ``shape = (..., blocks, d')``, drawn on the CPU (float64, perm int64)."""
    dp = shape[-1]
    b = rademacher(shape, generator)
    perm = torch.argsort(torch.rand(shape, generator=generator, dtype=torch.float64), dim=-1)
    g = standard_normal(shape, generator)
    chi = torch.linalg.vector_norm(standard_normal((*shape, dp), generator), dim=-1)
    s = chi / torch.linalg.vector_norm(g, dim=-1, keepdim=True)
    return {"S": s, "G": g, "B": b, "perm": perm}


def fastfood_project(x: torch.Tensor, params: dict) -> torch.Tensor:
    """x Wᵀ for ``x`` ``[..., n, d]`` and Fastfood ``params`` (S, G, B, perm: ``[..., blocks, d']``).

    Computes B ⊙ x̃ → H → Π → G ⊙ → H → S/√d' ⊙ per block (x̃ = x zero-padded to d'), broadcasting the
    leading dimensions of x against those of the parameters; returns ``[..., n, m]``. Differentiable in
    S, G, B and x.
    """
    s, g, b, perm = params["S"], params["G"], params["B"], params["perm"]
    m = params["num_features"]
    blocks, dp = s.shape[-2:]
    xp = torch.nn.functional.pad(x, (0, dp - x.shape[-1]))
    t = xp.unsqueeze(-2) * b.unsqueeze(-3)  # [..., n, blocks, d']
    t = fwht(t)
    # broadcast_tensors (an ATen op) rather than torch.broadcast_shapes, whose Python reference implementation
    # imports sympy (0.3 s) on its first call
    t, idx = torch.broadcast_tensors(t, perm.unsqueeze(-3))
    t = torch.gather(t, -1, idx)
    t = fwht(t * g.unsqueeze(-3))
    t = t * (s.unsqueeze(-3) / math.sqrt(dp))
    return t.reshape(*t.shape[:-2], blocks * dp)[..., :m]


def fastfood_matrix(params: dict, dim: int, *, dtype: torch.dtype, device) -> torch.Tensor:
    """The dense ``[..., m, d]`` frequency matrix of ``params``: the projections of the d unit vectors."""
    eye = torch.eye(dim, dtype=dtype, device=device)
    return fastfood_project(eye, params).transpose(-1, -2)


class Fastfood(GaussianApproximation):
    """Fastfood: (1/√d') S H G Π H B per block, first d columns, ⌈m/d'⌉ blocks, times ``std``."""

    name = "fastfood"
    row_marginal = "exact"
    rows_marginally_gaussian = True
    iid_rows = False
    independent_blocks = True
    proof = "proofs/fastfood_rows.md"

    def __init__(self, dim: int, *, std: float = 1.0, dtype=torch.float64, device=None):
        super().__init__(dim, std=std, dtype=dtype, device=device)
        self.padded_dim = next_power_of_two(self.dim)

    def num_blocks(self, num_features: int) -> int:
        return -(-num_features // self.padded_dim)

    def sample_structured(
        self, num_features: int, generator: torch.Generator, batch: int | None = None
    ) -> dict:
        """The structured draw: S (``std`` folded in), G, B, perm, each ``[(batch,) blocks, d']``, and m."""
        m, r = check_draw_args(num_features, generator, batch)
        lead = () if batch is None else (r,)
        raw = draw_fastfood_diagonals((*lead, self.num_blocks(m), self.padded_dim), generator)
        params = {
            k: v.to(self.device) if k == "perm" else v.to(self.device, self.dtype) for k, v in raw.items()
        }
        params["S"] = params["S"] * self.std
        params["num_features"] = m
        return params

    def project(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """x Wᵀ in O(m log d') per input, for ``x`` ``[..., n, d]`` (leading dims broadcast with draws)."""
        return fastfood_project(check_points(x, "x", dim=self.dim).to(self.dtype), params)

    def _sample(self, m, generator, r):
        params = self.sample_structured(m, generator, batch=r)
        return fastfood_matrix(params, self.dim, dtype=self.dtype, device=self.device)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, padded_dim={self.padded_dim}, std={self.std}"
