"""Explicit, seeded initialisation of the layers :mod:`kerneltheory.nn` builds (never the global RNG).

``nn.Linear`` and ``nn.Embedding`` draw their default initial values from the global RNG; here they are built
with :func:`torch.nn.utils.skip_init` and filled from a CPU ``torch.Generator`` instead, with the same laws as
PyTorch's defaults (Linear: U(−1/√fan_in, 1/√fan_in) for weight and bias; Embedding: N(0, 1)).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .._validation import check_device


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from a tuple of non-negative integers (numpy's SeedSequence)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 | int(state[1]) >> 1) & (2**63 - 1)


def generator(*keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*keys))


def _device(device) -> torch.device:
    # skip_init builds on the meta device and then moves to ``device``: None would leave it there.
    return check_device(device)


def linear(fan_in: int, fan_out: int, gen: torch.Generator, *, bias: bool = True, dtype, device) -> nn.Linear:
    layer = nn.utils.skip_init(nn.Linear, fan_in, fan_out, bias=bias, dtype=dtype, device=_device(device))
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        w = (2 * torch.rand((fan_out, fan_in), generator=gen, dtype=torch.float64) - 1) * bound
        layer.weight.copy_(w)
        if bias:
            layer.bias.copy_((2 * torch.rand(fan_out, generator=gen, dtype=torch.float64) - 1) * bound)
    return layer


def embedding(num: int, dim: int, gen: torch.Generator, *, std: float = 1.0, dtype, device) -> nn.Embedding:
    layer = nn.utils.skip_init(nn.Embedding, num, dim, dtype=dtype, device=_device(device))
    with torch.no_grad():
        layer.weight.copy_(std * torch.randn((num, dim), generator=gen, dtype=torch.float64))
    return layer
