"""FAVOR+ attention in the style of public Performer code: [batch, heads, length, dim_head] float32 tensors.

``softmax_kernel(data, projection_matrix, is_query)`` scales the inputs by d^(-1/4) and returns positive
features exp(ωᵀx̃ − ‖x̃‖²/2 − c)/√m whose products estimate exp(qᵀk/√d) up to the stabiliser c: for queries
the max over each query's own features (a constant per query, which cancels in the normalisation), for keys
one max over every key and feature of a sequence (one constant shared by the keys, which cancels too).
``FastAttention`` applies it with a key mask ``[batch, length]`` (True = keep) that zeroes the masked keys'
*features*, non-causal or causal (prefix sums); ``FeatureMap`` is the unstabilised map of one side, for auditing
the features alone. The frequencies are orthogonal rows drawn from torch's global generator at construction and
by ``redraw_projection_matrix()`` (docs/auditing.md; tests/test_audit_realistic.py audits this file and a set
of realistic bugs planted in it).
"""

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from global_rng_sampler import gaussian_orthogonal_random_matrix  # noqa: E402


def softmax_kernel(data, projection_matrix, is_query, stabilise=True):
    normalizer = data.shape[-1] ** -0.25
    ratio = projection_matrix.shape[0] ** -0.5
    data_dash = torch.einsum("...id,jd->...ij", normalizer * data, projection_matrix.type_as(data))
    diag_data = ((data**2).sum(-1) / 2.0 * normalizer**2).unsqueeze(-1)
    if not stabilise:
        return ratio * torch.exp(data_dash - diag_data)
    if is_query:
        stabiliser = torch.amax(data_dash, dim=-1, keepdim=True)
    else:
        stabiliser = torch.amax(data_dash, dim=(-1, -2), keepdim=True)
    return ratio * torch.exp(data_dash - diag_data - stabiliser)


class FastAttention(nn.Module):
    def __init__(self, dim_heads, nb_features=64, causal=False):
        super().__init__()
        self.dim_heads, self.nb_features, self.causal = dim_heads, nb_features, causal
        self.register_buffer("projection_matrix", gaussian_orthogonal_random_matrix(nb_features, dim_heads))

    @torch.no_grad()
    def redraw_projection_matrix(self):
        self.projection_matrix.copy_(gaussian_orthogonal_random_matrix(self.nb_features, self.dim_heads))

    def features(self, q, k, mask):
        q = softmax_kernel(q, self.projection_matrix, is_query=True)
        k = softmax_kernel(k, self.projection_matrix, is_query=False)
        if mask is not None:
            k = k.masked_fill(~mask[:, None, :, None], 0.0)
        return q, k, mask

    def linear_attention(self, q, k, v):
        if self.causal:
            context = torch.cumsum(torch.einsum("...nd,...ne->...nde", k, v), dim=-3)
            denominator = torch.einsum("...nd,...nd->...n", q, torch.cumsum(k, dim=-2))
            return torch.einsum("...nde,...nd->...ne", context, q) / denominator.unsqueeze(-1)
        context = torch.einsum("...nd,...ne->...de", k, v)
        denominator = torch.einsum("...nd,...d->...n", q, k.sum(dim=-2))
        return torch.einsum("...de,...nd->...ne", context, q) / denominator.unsqueeze(-1)

    def forward(self, q, k, v, mask=None):
        q, k, mask = self.features(q, k, mask)
        return self.linear_attention(q, k, v)


class FeatureMap(nn.Module):
    """The features of one side without a stabiliser: φ(q)ᵀφ(k) estimates exp(qᵀk/√d)."""

    def __init__(self, dim_heads, nb_features=64):
        super().__init__()
        self.dim_heads, self.nb_features = dim_heads, nb_features
        self.register_buffer("projection_matrix", gaussian_orthogonal_random_matrix(nb_features, dim_heads))

    @torch.no_grad()
    def redraw_projection_matrix(self):
        self.projection_matrix.copy_(gaussian_orthogonal_random_matrix(self.nb_features, self.dim_heads))

    def forward(self, x, is_query=True):
        return softmax_kernel(x, self.projection_matrix, is_query, stabilise=False)
