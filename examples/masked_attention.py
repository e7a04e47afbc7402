"""A multi-head linear-attention core with a padding mask (docs/auditing.md, style 4).

``LinearSelfAttention(dim_head, nb_features, causal)`` takes q, k, v of shape [batch, length, heads,
dim_head] and PyTorch's ``key_padding_mask`` [batch, length] (True = padding). Its frequencies are iid
N(0, I) rows drawn from torch's global generator at construction. Features are formed in log space and
stabilised legally (a constant per query; one constant shared by all kept keys of a batch entry and head),
padded keys' *features* are zeroed, and causal attention uses prefix sums.
"""

import torch
from torch import nn


class LinearSelfAttention(nn.Module):
    def __init__(self, dim_head: int, nb_features: int = 64, causal: bool = False):
        super().__init__()
        self.dim_head, self.causal = dim_head, causal
        self.register_buffer("projection", torch.randn(nb_features, dim_head))

    def log_features(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.dim_head**-0.25
        return x @ self.projection.to(x.dtype).t() - (x * x).sum(-1, keepdim=True) / 2

    def stabilise(self, log_q, log_k, keep):
        log_q = log_q - log_q.amax(-1, keepdim=True)
        shared = log_k.masked_fill(~keep, -torch.inf).amax(dim=(1, 3), keepdim=True)
        return log_q, log_k - shared

    def key_features(self, log_k, keep):
        return log_k.exp() * keep

    def forward(self, q, k, v, key_padding_mask=None):
        b, n = k.shape[:2]
        pad = torch.zeros(b, n, dtype=torch.bool) if key_padding_mask is None else key_padding_mask
        keep = (~pad)[:, :, None, None]
        log_q, log_k = self.stabilise(self.log_features(q), self.log_features(k), keep)
        phi_q, phi_k = log_q.exp(), self.key_features(log_k, keep)
        if self.causal:
            kv = torch.cumsum(torch.einsum("blhm,blhd->blhmd", phi_k, v), dim=1)
            num = torch.einsum("blhm,blhmd->blhd", phi_q, kv)
            den = torch.einsum("blhm,blhm->blh", phi_q, torch.cumsum(phi_k, dim=1))
        else:
            num = torch.einsum("blhm,bhmd->blhd", phi_q, torch.einsum("blhm,blhd->bhmd", phi_k, v))
            den = torch.einsum("blhm,bhm->blh", phi_q, phi_k.sum(1))
        return num / den.unsqueeze(-1)
