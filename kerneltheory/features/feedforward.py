r"""A trainable feed-forward kernel (Yorsh & Kovalenko 2022, "Linear Self-Attention Approximation via
Trainable Feedforward Kernel", arXiv:2211.04076).

.. math::
    \varphi(x) = \mathrm{softplus}(W_2\, g(x) + b_2), \qquad
    g(x) = \mathrm{act}(W_1 x + b_1) \quad\text{or, with } \texttt{glu=True},\quad
    g(x) = (W_a x + b_a) \odot \sigma(W_g x + b_g),

a deterministic map (no frequencies) whose kernel is φ(x)ᵀφ(y) itself. Defaults: D = ``feature_dim`` = 2d
(the feature dimension of the paired and Hedgehog maps at m = d), hidden width = D, act = GELU.
Parameters are initialised like ``nn.Linear`` (U(−1/√fan_in, 1/√fan_in)) from an explicit generator, never
the global RNG.

:meth:`Feedforward.orthogonality_penalty` is ‖W₁W₁ᵀ − I‖²_F, the Gram matrix of the rows of the first layer
(``[hidden, hidden]``, also for non-square W₁; if hidden > d the rows cannot be orthonormal and the penalty is
at least hidden − d); with ``glu=True`` it is the sum over W_a and W_g.

Positivity (proofs/deterministic_maps.md): softplus(u) = log(1 + e^u) > 0 for every real u. In floating
point softplus(u) ≈ e^u underflows to 0 for u below the log of the smallest subnormal (≈ −103.3 in float32,
−744.4 in float64). The claim is scoped accordingly: :meth:`log_features` computes log softplus(u) stably
(≈ u − e^u/2 for u ≪ 0), finite for every finite input, and the features are strictly positive wherever the
true value is representable. Nothing is clamped.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import check_device, check_dtype, check_int, generator_for
from .base import Component, unit_sign
from .elu import OwnGram

_ACTIVATIONS = {"gelu": torch.nn.functional.gelu, "relu": torch.relu, "tanh": torch.tanh}


def softplus(u: torch.Tensor) -> torch.Tensor:
    """log(1 + e^u) without a linear cut-off: max(u, 0) + log1p(e^{−|u|}) (no branch overflows)."""
    return torch.where(u > 0, u, torch.zeros_like(u)) + torch.log1p(torch.exp(-u.abs()))


def log_softplus(u: torch.Tensor) -> torch.Tensor:
    """log softplus(u), finite for every finite u: log(u + log1p(e^{−u})) for u > 0, else u + log(log1p(v)/v)
    with v = e^u (the ratio → 1 as v → 0, taken as 1 once v underflows)."""
    pos = u.clamp(min=0)
    neg = u.clamp(max=0)
    v = torch.exp(neg)
    safe_v = torch.where(v > 0, v, torch.ones_like(v))
    ratio = torch.where(v > 0, torch.log1p(safe_v) / safe_v, torch.ones_like(v))
    return torch.where(u > 0, torch.log(pos + torch.log1p(torch.exp(-pos))), neg + torch.log(ratio))


class Feedforward(OwnGram, Component):
    """φ(x) = softplus(W₂ act(W₁x + b₁) + b₂) (or its GLU variant), trainable; D = ``feature_dim``."""

    name = "feedforward"
    positive = True
    requires_law = False
    proofs = {
        "unbiased": "proofs/deterministic_maps.md",
        "positive": "proofs/deterministic_maps.md",
        "variance": "proofs/deterministic_maps.md",
    }

    def __init__(
        self,
        dim: int,
        feature_dim: int | None = None,
        hidden_dim: int | None = None,
        *,
        glu: bool = False,
        activation: str = "gelu",
        generator: torch.Generator | None = None,
        seed: int | None = None,
        dtype=torch.float64,
        device=None,
    ):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.out_dim = check_int(2 * dim if feature_dim is None else feature_dim, "feature_dim", minimum=1)
        hidden = self.out_dim if hidden_dim is None else hidden_dim
        self.hidden_dim = check_int(hidden, "hidden_dim", minimum=1)
        if not isinstance(glu, bool):
            raise TypeError(f"glu must be a bool, got {type(glu).__name__}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if (generator is None) == (seed is None):
            raise ValueError("give exactly one of generator= (a torch.Generator) or seed= (an int)")
        gen = generator_for(generator if generator is not None else seed, "seed")
        self.glu, self.activation = glu, activation
        check_dtype(dtype)
        device = check_device(device)

        def linear(fan_out: int, fan_in: int):
            bound = 1.0 / math.sqrt(fan_in)
            w = (2 * torch.rand(fan_out, fan_in, generator=gen, dtype=torch.float64) - 1) * bound
            b = (2 * torch.rand(fan_out, generator=gen, dtype=torch.float64) - 1) * bound
            return nn.Parameter(w.to(device, dtype)), nn.Parameter(b.to(device, dtype))

        d, h = self.dim, self.hidden_dim
        if glu:
            self.w_a, self.b_a = linear(h, d)
            self.w_g, self.b_g = linear(h, d)
        else:
            self.w1, self.b1 = linear(h, d)
        self.w2, self.b2 = linear(self.out_dim, h)

    def feature_dim(self, num_features: int) -> int:
        return self.out_dim

    def _first_layers(self) -> list[torch.Tensor]:
        return [self.w_a, self.w_g] if self.glu else [self.w1]

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """u = W₂ g(x) + b₂, ``[..., n, D]``, in the dtype of ``x``."""

        def lin(w, b, t):
            return t @ w.to(t.dtype).transpose(-1, -2) + b.to(t.dtype)

        if self.glu:
            hidden = lin(self.w_a, self.b_a, x) * torch.sigmoid(lin(self.w_g, self.b_g, x))
        else:
            hidden = _ACTIVATIONS[self.activation](lin(self.w1, self.b1, x))
        return lin(self.w2, self.b2, hidden)

    def log_features(self, x, w, extra, stats, side):
        logs = log_softplus(self.pre_activation(x))
        return logs, unit_sign(logs)

    def features(self, x, w, extra, stats, side):
        return softplus(self.pre_activation(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x, None, {}, {}, "query")

    def orthogonality_penalty(self) -> torch.Tensor:
        """Σ ‖W Wᵀ − I‖²_F over the first layer's weight matrices (rows' Gram matrix against the identity)."""
        total = 0.0
        for w in self._first_layers():
            gram = w @ w.transpose(-1, -2)
            total = total + ((gram - torch.eye(gram.shape[-1], dtype=w.dtype, device=w.device)) ** 2).sum()
        return total


    def target_name(self, law) -> str:
        return "φ(x)ᵀφ(y), trainable feed-forward φ"
