"""Realistic bugs planted in examples/performer_style.py (each one seen in public random-feature code)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from performer_style import FastAttention, FeatureMap, softmax_kernel  # noqa: E402


def no_diag_kernel(data, projection_matrix, is_query, stabilise=True):
    """softmax_kernel without its −‖x̃‖²/2 term (x̃ = x·d^(-1/4)), written as softmax_kernel times exp(‖x̃‖²/2):
    φ(q)ᵀφ(k) then estimates exp(q̃ᵀk̃ + ‖q̃‖²/2 + ‖k̃‖²/2)."""
    half_norm = (data * data).sum(-1, keepdim=True) / 2 * data.shape[-1] ** -0.5
    return softmax_kernel(data, projection_matrix, is_query, stabilise) * torch.exp(half_norm)


class ValuesOnlyMask(FastAttention):
    """Masks the values only: the padded keys' features still enter every denominator."""

    def forward(self, q, k, v, mask=None):
        if mask is not None:
            v = v.masked_fill(~mask[:, None, :, None], 0.0)
        return super().forward(q, k, v, None)


class MaskAfterNormalisation(FastAttention):
    """Attends over every key, then zeroes the outputs at padded positions: kept outputs still see padding."""

    def forward(self, q, k, v, mask=None):
        out = super().forward(q, k, v, None)
        return out if mask is None else out.masked_fill(~mask[:, None, :, None], 0.0)


class MissingDiagAttention(FastAttention):
    def features(self, q, k, mask):
        q = no_diag_kernel(q, self.projection_matrix, is_query=True)
        k = no_diag_kernel(k, self.projection_matrix, is_query=False)
        return q, k if mask is None else k.masked_fill(~mask[:, None, :, None], 0.0), mask


class ExclusiveCausal(FastAttention):
    """Causal prefix sums shifted by one position: each token forgets itself (the first divides 0 by 0)."""

    def linear_attention(self, q, k, v):
        k = torch.cat([torch.zeros_like(k[..., :1, :]), k[..., :-1, :]], dim=-2)
        v = torch.cat([torch.zeros_like(v[..., :1, :]), v[..., :-1, :]], dim=-2)
        return super().linear_attention(q, k, v)


class SeededFastAttention(FastAttention):
    """Seeds the global generator in its constructor: every instance holds the same frequencies."""

    def __init__(self, *args, **kwargs):
        torch.manual_seed(0)
        super().__init__(*args, **kwargs)


class MissingDiagFeatures(FeatureMap):
    def forward(self, x, is_query=True):
        return no_diag_kernel(x, self.projection_matrix, is_query, stabilise=False)


class RedrawInForward(FeatureMap):
    """Redraws every second call, also in eval mode: the query and the key features use different frequencies."""

    calls = 0

    def forward(self, x, is_query=True):
        self.calls += 1
        if self.calls % 2 == 0:
            self.redraw_projection_matrix()
        return super().forward(x, is_query)


class SeededRedraw(FeatureMap):
    """Reseeds the global generator before each redraw: every redraw gives the same frequencies."""

    def redraw_projection_matrix(self):
        torch.manual_seed(0)
        super().redraw_projection_matrix()
