"""Planted attention-level defects (each a small, realistic bug in an outside attention implementation)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from masked_attention import LinearSelfAttention  # noqa: E402
from oprf_style import OPRFFeatures  # noqa: E402


class PerKeyStabiliser(LinearSelfAttention):
    """Subtracts each key's own max over features: a different constant per key, which biases every row."""

    def stabilise(self, log_q, log_k, keep):
        return log_q - log_q.amax(-1, keepdim=True), log_k - log_k.amax(-1, keepdim=True)


class MaskedInputs(LinearSelfAttention):
    """Zeroes the padded keys' *inputs* instead of their features: φ(0) ≠ 0 enters the denominator."""

    def forward(self, q, k, v, key_padding_mask=None):
        if key_padding_mask is not None:
            keep = (~key_padding_mask)[:, :, None, None].to(k.dtype)
            k, v = k * keep, v * keep
        return super().forward(q, k, v, None)


class CausalLeak(LinearSelfAttention):
    """Causal prefix sums that include the next position (an off-by-one in the shifted cumulative sum)."""

    def forward(self, q, k, v, key_padding_mask=None):
        assert self.causal
        log_q, log_k = self.stabilise(self.log_features(q), self.log_features(k), torch.ones_like(k[..., :1, :1],
                                                                                                 dtype=torch.bool))
        phi_q, phi_k = log_q.exp(), log_k.exp()
        kv = torch.cumsum(torch.einsum("blhm,blhd->blhmd", phi_k, v), dim=1)
        z = torch.cumsum(phi_k, dim=1)
        kv = torch.cat([kv[:, 1:], kv[:, -1:]], dim=1)  # position i sees keys j <= i + 1
        z = torch.cat([z[:, 1:], z[:, -1:]], dim=1)
        num = torch.einsum("blhm,blhmd->blhd", phi_q, kv)
        return num / torch.einsum("blhm,blhm->blh", phi_q, z).unsqueeze(-1)


class PerPositionOPRF(OPRFFeatures):
    """OPRF with A computed from each input's own norm (φ̄_i = 2‖x_i‖²) instead of the sequence: queries and
    keys no longer share A, and the estimate is biased."""

    def _features(self, x):
        d = self.dim
        phi_bar = 2 * (x * x).sum(-1, keepdim=True)
        rho = 2 * d / (torch.sqrt((2 * phi_bar + d) ** 2 + 8 * d * phi_bar) + 2 * phi_bar + d)
        self.a = (1 - 1 / rho) / 8
        return super()._features(x)
