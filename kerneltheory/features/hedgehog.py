r"""Hedgehog, a trainable exponential feature map that learns to mimic softmax attention (Zhang, Bhatia,
Kumbong & Ré 2024, "The Hedgehog & the Porcupine: Expressive Linear Attentions with Softmax Mimicry",
eq. (3)).

.. math::
    \varphi(x) = [\exp(Wx + b),\ \exp(-Wx - b)] \in \mathbb R^{2d}, \qquad
    \varphi_{\text{norm}}(x) = [\mathrm{softmax}(Wx + b),\ \mathrm{softmax}(-Wx - b)]

with W ∈ R^{d×d} initialised to the identity and b to 0 (trainable ``nn.Parameter``s; at initialisation
φ(x)ᵀφ(y) = Σ_l 2 cosh(x_l + y_l)). ``normalize=True`` applies a softmax over each half of the feature
dimension, as in the paper's code. A deterministic map: its kernel is φ(x)ᵀφ(y) itself.

Evaluated in log space (log φ = ±(Wx + b), or the log-softmax), so log φ is finite for every finite input;
features are strictly positive wherever the true value is representable (log φ above ≈ −103.3 in float32,
−744.4 in float64; proofs/deterministic_maps.md).
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_device, check_dtype, check_int
from .base import Component, unit_sign
from .elu import OwnGram


class Hedgehog(OwnGram, Component):
    """[exp(Wx + b), exp(−Wx − b)], W = I and b = 0 at initialisation; D = 2d."""

    name = "hedgehog"
    positive = True
    requires_law = False
    proofs = {
        "unbiased": "proofs/deterministic_maps.md",
        "positive": "proofs/deterministic_maps.md",
        "variance": "proofs/deterministic_maps.md",
    }

    def __init__(self, dim: int, *, normalize: bool = False, dtype=torch.float64, device=None):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
        self.normalize = normalize
        kw = {"dtype": check_dtype(dtype), "device": check_device(device)}
        self.weight = nn.Parameter(torch.eye(self.dim, **kw))
        self.bias = nn.Parameter(torch.zeros(self.dim, **kw))

    def feature_dim(self, num_features: int) -> int:
        return 2 * self.dim

    def log_features(self, x, w, extra, stats, side):
        u = x @ self.weight.to(x.dtype).transpose(-1, -2) + self.bias.to(x.dtype)
        if self.normalize:
            logs = torch.cat([torch.log_softmax(u, dim=-1), torch.log_softmax(-u, dim=-1)], dim=-1)
        else:
            logs = torch.cat([u, -u], dim=-1)
        return logs, unit_sign(logs)

    def features(self, x, w, extra, stats, side):
        return torch.exp(self.log_features(x, w, extra, stats, side)[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x, None, {}, {}, "query")


    def target_name(self, law) -> str:
        return "φ(x)ᵀφ(y), Hedgehog φ" + (" (softmax-normalised)" if self.normalize else "")
