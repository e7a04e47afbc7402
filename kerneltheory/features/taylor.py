r"""Deterministic polynomial feature maps with exact kernels: Based's Taylor map and ReBased.

**Based** (Arora et al. 2024, "Simple linear attention language models balance the recall-throughput
tradeoff", §3; the Taylor baseline of Zhang et al. 2024, "The Hedgehog & the Porcupine"): the second-order
Taylor expansion of exp(qᵀk),

.. math::
    \varphi(x) = \big[1,\ x,\ \operatorname{vec}(xx^\top)/\sqrt 2\big] \in \mathbb R^{1 + d + d^2},\qquad
    \varphi(x)^\top\varphi(y) = 1 + s + s^2/2,\quad s = x^\top y,

since vec(xxᵀ)ᵀvec(yyᵀ) = (xᵀy)². The kernel is :func:`kerneltheory.kernels.exp_taylor2`; it equals
((1 + s)² + 1)/2 ≥ 1/2, so attention weights built on it are strictly positive and the normaliser never
vanishes, although single features can be negative (proofs/polynomial.md, items 1–2). Attention's usual
d^{-1/4} scaling of queries and keys is applied to the inputs, as for every map here (MATH.md).

**ReBased** (Aksenov et al. 2024, "Linear Transformers with Learnable Kernel Functions are Better In-Context
Models", §4): Based without the constant and linear terms, on a normalised input with a learnable affine map,

.. math::
    \tilde x = \gamma \odot \frac{x - \bar x\mathbb 1}{\sqrt{\operatorname{var}(x) + \epsilon}} + \beta,\qquad
    \varphi(x) = \operatorname{vec}(\tilde x\tilde x^\top) \in \mathbb R^{d^2},\qquad
    \varphi(x)^\top\varphi(y) = (\tilde x^\top\tilde y)^2 \ge 0,

x̄ and var(x) the mean and (biased) variance of the d coordinates of x (layer normalisation), γ, β ∈ R^d
trainable (initialised to 𝟙 and 0). The kernel is the polynomial kernel of degree 2 on x̃, ỹ
(:func:`kerneltheory.kernels.polynomial`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import kernels
from .._validation import check_dtype, check_int, check_real
from .base import Component


def outer_features(u: torch.Tensor) -> torch.Tensor:
    """vec(uuᵀ) for ``u: [..., n, k]``: ``[..., n, k²]``, so that outer(u)ᵀouter(v) = (uᵀv)²."""
    return (u.unsqueeze(-1) * u.unsqueeze(-2)).flatten(-2)


_DETERMINISTIC_PROOFS = {"unbiased": "proofs/polynomial.md", "variance": "proofs/polynomial.md"}


class Based(Component):
    """φ(x) = [1, x, vec(xxᵀ)/√2], D = 1 + d + d²: φ(x)ᵀφ(y) = 1 + xᵀy + (xᵀy)²/2 exactly."""

    name = "based"
    positive = False
    requires_law = False
    proofs = _DETERMINISTIC_PROOFS
    claim_notes = {
        "positive": "single features can be negative; the kernel 1 + s + s²/2 = ((1 + s)² + 1)/2 ≥ 1/2 is "
        "strictly positive (proofs/polynomial.md, item 2)",
        "unbiased": "deterministic: φ(x)ᵀφ(y) equals 1 + s + s²/2 up to rounding (proofs/polynomial.md, item 1)",
    }

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)

    def feature_dim(self, num_features: int) -> int:
        return 1 + self.dim + self.dim**2

    def features(self, x, w, extra, stats, side):
        one = torch.ones_like(x[..., :1])
        return torch.cat([one, x, outer_features(x) / math.sqrt(2.0)], dim=-1)

    def target(self, law, x, y, stats):
        return kernels.exp_taylor2(x, y)

    def target_name(self, law) -> str:
        return "1 + xᵀy + (xᵀy)²/2"


class ReBased(Component):
    """φ(x) = vec(x̃x̃ᵀ), x̃ = γ ⊙ layernorm(x) + β; D = d²: φ(x)ᵀφ(y) = (x̃ᵀỹ)²."""

    name = "rebased"
    positive = False
    requires_law = False
    proofs = _DETERMINISTIC_PROOFS
    claim_notes = {
        "positive": "single features can be negative; the kernel (x̃ᵀỹ)² is ≥ 0 but vanishes where x̃ ⊥ ỹ",
        "unbiased": "deterministic: φ(x)ᵀφ(y) equals (x̃ᵀỹ)² up to rounding (proofs/polynomial.md, item 1)",
    }

    def __init__(self, dim: int, *, eps: float = 1e-5, dtype=torch.float64, device=None):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.eps = check_real(eps, "eps", minimum=0.0, strict_min=True)
        kw = {"dtype": check_dtype(dtype), "device": torch.device(device) if device is not None else None}
        self.gamma = nn.Parameter(torch.ones(self.dim, **kw))
        self.beta = nn.Parameter(torch.zeros(self.dim, **kw))

    def feature_dim(self, num_features: int) -> int:
        return self.dim**2

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """x̃ = γ ⊙ (x − x̄)/√(var(x) + ε) + β over the last dimension."""
        centred = x - x.mean(-1, keepdim=True)
        var = (centred * centred).mean(-1, keepdim=True)
        return self.gamma.to(x.dtype) * centred / torch.sqrt(var + self.eps) + self.beta.to(x.dtype)

    def features(self, x, w, extra, stats, side):
        return outer_features(self.normalise(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x, None, {}, {}, "query")

    def target(self, law, x, y, stats):
        return kernels.polynomial(self.normalise(x), self.normalise(y), degree=2)

    def target_name(self, law) -> str:
        return "(x̃ᵀỹ)², x̃ = γ ⊙ layernorm(x) + β"
