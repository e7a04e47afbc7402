r"""Generative (implicit) frequency law: ω = g_θ(ε), g a small neural network (implicit kernel learning).

Law (Li et al. 2019, "Implicit Kernel Learning"; Chowdhury et al. 2022, "Learning the Transformer Kernel",
Generative-RKS/PRF):

.. math::
    \omega = g_\theta(\varepsilon), \qquad \varepsilon \sim N(0, I_{k}), \qquad
    g_\theta = A_3 \circ \tanh \circ A_2 \circ \tanh \circ A_1 ,

with A_j affine maps R^k → R^h → R^h → R^d (hidden width h = ``hidden``, two hidden layers). Rows are iid
draws from the pushforward law itself (``row_marginal = "exact"``, ``iid_rows = True``), which has no
closed-form ψ or M: ``reference = None`` and estimators are compared against a large Monte Carlo reference
(proofs/monte_carlo_reference.md). W is differentiable in θ (reparameterisation through ε).

Initialisation (from the ``generator`` given at construction, never the global RNG): weights
N(0, 1/fan_in) (LeCun normal, so each pre-activation has unit variance for unit-variance inputs), biases 0.

Example:
    >>> import torch
    >>> from kerneltheory.spectral import Generative
    >>> law = Generative(3, generator=torch.Generator().manual_seed(0))
    >>> law.sample(7, torch.Generator().manual_seed(1), batch=2).shape
    torch.Size([2, 7, 3])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import check_generator, check_int
from .base import SpectralLaw


class Generative(SpectralLaw):
    """ω = g_θ(ε), ε ~ N(0, I_noise_dim); g a tanh MLP with two hidden layers of width ``hidden``."""

    name = "generative"
    row_marginal = "exact"
    rows_marginally_gaussian = False
    iid_rows = True
    learnable = True
    proof = "proofs/monte_carlo_reference.md"

    def __init__(
        self,
        dim: int,
        *,
        generator: torch.Generator,
        noise_dim: int | None = None,
        hidden: int = 32,
        dtype=torch.float64,
        device=None,
    ):
        super().__init__(dim, dtype=dtype, device=device)
        check_generator(generator)
        self.noise_dim = self.dim if noise_dim is None else check_int(noise_dim, "noise_dim", minimum=1)
        self.hidden = check_int(hidden, "hidden", minimum=1)
        widths = [self.noise_dim, self.hidden, self.hidden, self.dim]
        layers: list[nn.Module] = []
        for j, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            # the default initialisation draws from the global RNG: its state is restored (fork_rng), so the
            # caller's stream is untouched; the weights are then drawn from ``generator``. (skip_init would avoid
            # the draw but builds on the meta device, whose first use imports sympy: 0.3 s.)
            with torch.random.fork_rng(devices=[]):
                linear = nn.Linear(fan_in, fan_out, dtype=self.dtype, device=self.device)
            with torch.no_grad():
                w = torch.randn((fan_out, fan_in), generator=generator, dtype=torch.float64) / math.sqrt(
                    fan_in
                )
                linear.weight.copy_(w)
                linear.bias.zero_()
            layers.append(linear)
            if j < len(widths) - 2:
                layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    @property
    def reference(self) -> None:
        return None

    def _sample(self, m, generator, r):
        eps = self._normal((r, m, self.noise_dim), generator)
        return self.net(eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, noise_dim={self.noise_dim}, hidden={self.hidden}"
