r"""The KL-Transformer: a small encoder classifier built from :class:`KernelizedAttention` layers.

After Chowdhury et al. 2022 ("Learning the Transformer Kernel", §4): token embedding + learned positions,
L pre-norm layers

.. math::
    h \leftarrow h + \mathrm{Attn}(\mathrm{LN}(h)), \qquad h \leftarrow h + \mathrm{MLP}(\mathrm{LN}(h)),

with MLP = Linear(d, r·d) → GELU → Linear(r·d, d); then a final LayerNorm, the mean over the real (unmasked)
positions and a linear head. Every layer's attention uses the same ``kernel`` with its own parameters and
draws (layer l is seeded from ``(seed, l)``). All parameters are initialised from CPU generators seeded from
``seed`` (the global RNG is never touched), so two models with one seed are identical.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_device, check_dtype, check_int, check_tensor_device
from . import _init
from .attention import KernelizedAttention

__all__ = ["EncoderLayer", "KLTransformer"]


class EncoderLayer(nn.Module):
    """Pre-norm encoder layer: h + Attn(LN h), then h + MLP(LN h)."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        kernel: str,
        num_features,
        *,
        mlp_ratio: int,
        seed: int,
        dtype,
        device,
        **attn_kw,
    ):
        super().__init__()
        check_int(d_model, "d_model", minimum=1)
        check_int(mlp_ratio, "mlp_ratio", minimum=1)
        kw = {"dtype": check_dtype(dtype), "device": check_device(device)}
        self.norm1 = nn.LayerNorm(d_model, **kw)
        self.attn = KernelizedAttention(d_model, num_heads, kernel, num_features, seed=seed, **kw, **attn_kw)
        self.norm2 = nn.LayerNorm(d_model, **kw)
        gen = _init.generator(seed, 7)
        self.mlp = nn.Sequential(
            _init.linear(d_model, mlp_ratio * d_model, gen, **kw),
            nn.GELU(),
            _init.linear(mlp_ratio * d_model, d_model, gen, **kw),
        )

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = h + self.attn(self.norm1(h), mask)
        return h + self.mlp(self.norm2(h))


class KLTransformer(nn.Module):
    """Encoder classifier: ``forward(tokens [B, n] int64, mask [B, n] bool | None) -> logits [B, C]``.

    ``kernel``, ``num_features`` and ``attn_kw`` (``redraw``, ``deterministic_eval``, ``causal``, kernel
    arguments such as ``components=2``) go to every layer's :class:`KernelizedAttention`.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        *,
        d_model: int = 64,
        num_heads: int = 2,
        num_layers: int = 2,
        kernel: str = "softmax",
        num_features: int | None = None,
        max_len: int = 2048,
        mlp_ratio: int = 2,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device=None,
        **attn_kw,
    ):
        super().__init__()
        self.vocab_size = check_int(vocab_size, "vocab_size", minimum=1)
        self.num_classes = check_int(num_classes, "num_classes", minimum=2)
        self.max_len = check_int(max_len, "max_len", minimum=1)
        self.d_model = check_int(d_model, "d_model", minimum=1)
        check_int(num_layers, "num_layers", minimum=1)
        check_int(mlp_ratio, "mlp_ratio", minimum=1)
        self.seed = check_int(seed, "seed", minimum=0)
        self.kernel = kernel
        kw = {"dtype": check_dtype(dtype), "device": check_device(device)}
        gen = _init.generator(self.seed, 0)
        self.embed = _init.embedding(self.vocab_size, d_model, gen, std=d_model**-0.5, **kw)
        self.pos = _init.embedding(self.max_len, d_model, gen, std=0.02, **kw)
        self.layers = nn.ModuleList(
            EncoderLayer(
                d_model,
                num_heads,
                kernel,
                num_features,
                mlp_ratio=mlp_ratio,
                seed=_init.derive_seed(self.seed, 1, layer) % 2**31,
                **kw,
                **attn_kw,
            )
            for layer in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model, **kw)
        self.head = _init.linear(d_model, self.num_classes, gen, **kw)

    @property
    def attention_layers(self) -> list[KernelizedAttention]:
        return [layer.attn for layer in self.layers]

    def _check(self, tokens: torch.Tensor, mask: torch.Tensor | None):
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
        if tokens.dim() != 2 or tokens.dtype != torch.int64:
            raise ValueError(
                f"tokens must be an int64 tensor of shape [batch, n], got {tokens.dtype} {tuple(tokens.shape)}"
            )
        check_tensor_device(tokens, "tokens")
        if tokens.device != self.embed.weight.device:
            raise ValueError(f"tokens must be on the model's device {self.embed.weight.device}, got {tokens.device}")
        if tokens.shape[1] == 0:
            raise ValueError("tokens must have at least one position (n >= 1)")
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"tokens has sequence length {tokens.shape[1]}, more than max_len = {self.max_len}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise ValueError(
                f"tokens must lie in [0, vocab_size) = [0, {self.vocab_size}), got values in "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.shape != tokens.shape or mask.dtype != torch.bool:
                raise ValueError(f"mask must be a bool tensor of shape {tuple(tokens.shape)}")
            check_tensor_device(mask, "mask")

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        return self.embed(tokens) + self.pos.weight[:n]

    def layer_inputs(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The (layer-normed) input of every layer's attention, ``[B, n, d_model]`` each (for diagnostics)."""
        self._check(tokens, mask)
        h = self.embed_tokens(tokens)
        out = []
        for layer in self.layers:
            out.append(layer.norm1(h))
            h = layer(h, mask)
        return out

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self._check(tokens, mask)
        h = self.embed_tokens(tokens)
        for layer in self.layers:
            h = layer(h, mask)
        h = self.norm(h)
        if mask is None:
            pooled = h.mean(1)
        else:
            w = mask.to(h.dtype).unsqueeze(-1)
            pooled = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
        return self.head(pooled)
