r"""Learnable Fastfood (FastFood-RKS/PRF): the Fastfood diagonals S, G, B as trainable parameters.

Construction (Yang et al. 2015, "À la Carte — Learning Fast Kernels"; Chowdhury et al. 2022,
"Learning the Transformer Kernel", FastFood-RKS/PRF): per d'×d' block (d' the least power of two ≥ d)

.. math::
    V = \tfrac{1}{\sqrt{d'}}\, S H G \Pi H B ,

with S, G, B real diagonals held as ``nn.Parameter`` of shape ``[blocks, d']`` and the permutation Π drawn
afresh from the sample generator on every draw; W is the first d columns of the ⌈m/d'⌉ stacked blocks, first m
rows. The number of features m is fixed at construction (the parameters have one entry per row of V);
:meth:`sample` refuses any other m.

Initialisation is a Fastfood draw (see :mod:`kerneltheory.spectral.fastfood`): B = ±1, g ~ N(0, I),
S_ii = std·s_i/‖g‖ with s_i ~ χ_{d'}, all from the ``generator`` given at construction. At initialisation each
row is then N(0, std² I_d) (proofs/fastfood_rows.md), but training moves S, G, B anywhere: the law is its own
law, with no closed form (``reference = None``; estimators compare against a Monte Carlo reference) and
``row_marginal = "no"`` relative to any Gaussian. W is differentiable in S, G and B (B gets gradients too: it
is a real parameter initialised at ±1); Π is a discrete random choice and carries no gradient.

Example:
    >>> import torch
    >>> from kerneltheory.spectral import LearnableFastfood
    >>> law = LearnableFastfood(3, 8, generator=torch.Generator().manual_seed(0))
    >>> law.sample(8, torch.Generator().manual_seed(1), batch=2).shape
    torch.Size([2, 8, 3])
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_generator, check_int, check_points, check_real
from .base import SpectralLaw
from .fastfood import check_draw_args, draw_fastfood_diagonals, fastfood_matrix, fastfood_project
from .hadamard import next_power_of_two


class LearnableFastfood(SpectralLaw):
    """Fastfood with trainable S, G, B (``[blocks, d']`` each); Π random per draw; m fixed at construction."""

    name = "fastfood_learnable"
    row_marginal = "no"
    rows_marginally_gaussian = False
    iid_rows = False
    learnable = True
    proof = "proofs/fastfood_rows.md"

    def __init__(
        self,
        dim: int,
        num_features: int,
        *,
        generator: torch.Generator,
        std: float = 1.0,
        dtype=torch.float64,
        device=None,
    ):
        super().__init__(dim, dtype=dtype, device=device)
        self.num_features = check_int(num_features, "num_features", minimum=1)
        check_generator(generator)
        self.std = check_real(std, "std", minimum=0.0, strict_min=True)
        self.padded_dim = next_power_of_two(self.dim)
        self.num_blocks = -(-self.num_features // self.padded_dim)
        init = draw_fastfood_diagonals((self.num_blocks, self.padded_dim), generator)
        # Π of the initial draw is discarded: the permutation is redrawn on every sample.
        self.S = nn.Parameter((init["S"] * self.std).to(self.device, self.dtype))
        self.G = nn.Parameter(init["G"].to(self.device, self.dtype))
        self.B = nn.Parameter(init["B"].to(self.device, self.dtype))

    @property
    def reference(self) -> None:
        return None

    def _check_m(self, m: int) -> None:
        if m != self.num_features:
            raise ValueError(
                f"num_features must equal the m fixed at construction ({self.num_features}) for a "
                f"learnable Fastfood law, got {m}"
            )

    def sample_structured(
        self, num_features: int, generator: torch.Generator, batch: int | None = None
    ) -> dict:
        """S, G, B (the parameters, ``[blocks, d']``) and a fresh perm ``[(batch,) blocks, d']`` per draw."""
        m, r = check_draw_args(num_features, generator, batch)
        self._check_m(m)
        lead = () if batch is None else (r,)
        keys = torch.rand((*lead, self.num_blocks, self.padded_dim), generator=generator, dtype=torch.float64)
        perm = torch.argsort(keys, dim=-1).to(self.device)
        return {"S": self.S, "G": self.G, "B": self.B, "perm": perm, "num_features": m}

    def project(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """x Wᵀ in O(m log d') per input, for ``x`` ``[..., n, d]`` (leading dims broadcast with draws)."""
        return fastfood_project(check_points(x, "x", dim=self.dim).to(self.dtype), params)

    def _sample(self, m, generator, r):
        self._check_m(m)
        params = self.sample_structured(m, generator, batch=r)
        return fastfood_matrix(params, self.dim, dtype=self.dtype, device=self.device)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_features={self.num_features}, padded_dim={self.padded_dim}"
