"""Optimal positive random features (FAVOR++) whose parameter comes from the sequence (docs/auditing.md, style 3).

Likhosherstov et al. (2022) choose A ≤ 0 in φ(x) = (1 − 4A)^{d/4} exp(A‖ω‖² + √(1 − 4A)·ωᵀx − ‖x‖²/2)/√m
from the statistics of the queries *and* keys of a sequence, φ̄ = mean‖q‖² + mean‖k‖² + 2 mean(q)ᵀmean(k):
ρ = (√((2φ̄ + d)² + 8dφ̄) − 2φ̄ − d)/(4φ̄), A = (1 − 1/ρ)/8. For any A the features are unbiased for
exp(qᵀk), provided queries and keys share it. ``OPRFFeatures.fit(q, k)`` computes A; ``query``/``key``
apply it; ``favorpp_attention`` is the non-causal attention built on them (inputs [batch, length, dim]).
"""

import math

import torch


class OPRFFeatures:
    def __init__(self, dim: int, nb_features: int):
        self.dim, self.nb_features = dim, nb_features
        self.omega = torch.randn(nb_features, dim, dtype=torch.float64)
        self.a = None

    def fit(self, q: torch.Tensor, k: torch.Tensor) -> "OPRFFeatures":
        mq, mk = q.mean(-2, keepdim=True), k.mean(-2, keepdim=True)
        phi_bar = (q * q).sum(-1, keepdim=True).mean(-2, keepdim=True) + (k * k).sum(-1, keepdim=True).mean(
            -2, keepdim=True) + 2 * (mq * mk).sum(-1, keepdim=True)
        d = self.dim
        rho = 2 * d / (torch.sqrt((2 * phi_bar + d) ** 2 + 8 * d * phi_bar) + 2 * phi_bar + d)
        self.a = (1 - 1 / rho) / 8
        return self

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if self.a is None:
            raise RuntimeError("call fit(q, k) first: A is a statistic of the sequence")
        a = self.a
        w = self.omega.to(x.dtype)
        log_f = (a * (w * w).sum(-1) + torch.sqrt(1 - 4 * a) * (x @ w.t()) - (x * x).sum(-1, keepdim=True) / 2
                 + self.dim / 4 * torch.log(1 - 4 * a))
        return torch.exp(log_f) / math.sqrt(self.nb_features)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)

    def key(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)


def favorpp_attention(q, k, v, features: OPRFFeatures):
    """out = φ(q)(φ(k)ᵀv) / φ(q)(φ(k)ᵀ1), queries and keys scaled by d^(-1/4), A fitted per sequence."""
    s = q.shape[-1] ** -0.25
    features.fit(q * s, k * s)
    phi_q, phi_k = features.query(q * s), features.key(k * s)
    num = phi_q @ (phi_k.transpose(-1, -2) @ v)
    den = phi_q @ phi_k.sum(-2).unsqueeze(-1)
    return num / den
