r"""elu + 1, the deterministic feature map of the Linear Transformer (Katharopoulos et al. 2020, "Transformers
are RNNs: Fast Autoregressive Transformers with Linear Attention", eq. (7)).

.. math::
    \varphi(x)_l = \mathrm{elu}(x_l) + 1 = \begin{cases} x_l + 1 & x_l > 0 \\ e^{x_l} & x_l \le 0 \end{cases}

D = d features, no frequencies; the kernel is φ(x)ᵀφ(y) itself (exact by definition). Every feature is
strictly positive in exact arithmetic (proofs/deterministic_maps.md). In floating point, writing elu(x) + 1
literally rounds e^{x} − 1 + 1 to 0 once e^{x} is below half an ulp of 1 (x ≲ −17 in float32), so the map is
evaluated as the piecewise form above, in log space (log φ = log1p(x) or x): log φ is finite for every
finite input, and φ > 0 wherever e^{x} is representable (x > −103.3 in float32, −744.4 in float64; below
that the true value underflows).
"""

from __future__ import annotations

import torch

from .base import Component, unit_sign


def deterministic_gram(component: Component, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """φ(x)ᵀφ(y) as a ``[..., n, n']`` Gram matrix for a deterministic map (the map's own kernel)."""
    fx = component.features(x, None, {}, {}, "query")
    fy = component.features(y, None, {}, {}, "key")
    return fx @ fy.transpose(-1, -2)


class OwnGram:
    """Mixin of a deterministic map whose kernel is its own Gram φ(x)ᵀφ(y) (:func:`deterministic_gram` as its target):
    its unbiasedness holds by definition, so no check can verify it (``own_gram_target``, read by
    :attr:`kerneltheory.estimators.RandomFeatureEstimator.own_target`: the claim matrix reads it n/a)."""

    own_gram_target = True

    def target(self, law, x, y, stats):
        return deterministic_gram(self, x, y)


class EluPlusOne(OwnGram, Component):
    """φ(x) = elu(x) + 1, elementwise, D = d."""

    name = "elu"
    positive = True
    requires_law = False
    proofs = {
        "unbiased": "proofs/deterministic_maps.md",
        "positive": "proofs/deterministic_maps.md",
        "variance": "proofs/deterministic_maps.md",
    }

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def feature_dim(self, num_features: int) -> int:
        if self.dim is None:
            raise ValueError("the elu map's feature dimension is its input dimension: build it with dim=")
        return self.dim

    def log_features(self, x, w, extra, stats, side):
        # clamps select the branch so that neither branch overflows (no 0·inf in the gradients)
        logs = torch.where(x > 0, torch.log1p(x.clamp(min=0)), x.clamp(max=0))
        return logs, unit_sign(logs)

    def features(self, x, w, extra, stats, side):
        return torch.where(x > 0, x + 1, torch.exp(x.clamp(max=0)))

    def target_name(self, law) -> str:
        return "φ(x)ᵀφ(y), φ = elu + 1"
